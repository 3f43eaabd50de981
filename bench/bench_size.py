"""Database size per million webhooks: lifecycles through Writer.commit, measured, extrapolated.

Replicate-shaped lifecycles (starting, processing, outcome; `hookwatch simulate`'s bodies, with
the headers a signed webhook keeps) are committed in group-commit batches into a fresh SQLite
file, spread over simulated time at a steady rate. The file and each table (with its indexes,
from SQLite's dbstat) are measured and scaled to one million webhooks; then retention is applied
to show what stays for good.

    .venv/bin/python bench/bench_size.py [--lifecycles 30000] [--rate 12] [--batch 64]
"""

from __future__ import annotations

import argparse
import json
import random
import sqlite3
import sys
import tempfile
import time
from collections import defaultdict
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from hookwatch.hooks.payload import parse_json, read_prediction  # noqa: E402
from hookwatch.hooks.signature import sign  # noqa: E402
from hookwatch.simulate import lifecycle  # noqa: E402
from hookwatch.storage.batch import NewEvent  # noqa: E402
from hookwatch.storage.engine import make_engine  # noqa: E402
from hookwatch.storage.migrate import upgrade  # noqa: E402
from hookwatch.storage.prune import DAY, prune_old  # noqa: E402
from hookwatch.storage.writer import Writer  # noqa: E402

SECRET = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
MB = 1024 * 1024


class Clock:
    def __init__(self, now: float) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def event(raw: bytes, msg_id: str, at: float) -> NewEvent:
    """What hooks.route stores for a signed webhook."""
    ts = int(at)
    headers = {
        "host": "hooks.example.com", "user-agent": "Replicate-Webhooks/2.0",
        "content-type": "application/json", "content-length": str(len(raw)),
        "accept-encoding": "gzip", "webhook-id": msg_id, "webhook-timestamp": str(ts),
        "webhook-signature": sign(SECRET, msg_id, ts, raw),
    }
    fields = read_prediction(parse_json(raw), {})
    return NewEvent(dedup_key="id:" + msg_id, source="signed", received_at=at, sent_at=ts,
                    headers=json.dumps(headers), body=raw, **fields)


def table_sizes(path: Path) -> dict[str, int]:
    """Bytes per table, its indexes included (SQLite's dbstat virtual table)."""
    with sqlite3.connect(path) as conn:
        conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        owner = dict(conn.execute("SELECT name, tbl_name FROM sqlite_master"))
        sizes: dict[str, int] = defaultdict(int)
        for name, size in conn.execute("SELECT name, sum(pgsize) FROM dbstat GROUP BY name"):
            sizes[owner.get(name, name)] += size
    return dict(sizes)


def rows(path: Path, table: str) -> int:
    with sqlite3.connect(path) as conn:
        return int(conn.execute(f"SELECT count(*) FROM {table}").fetchone()[0])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--lifecycles", type=int, default=30_000)
    parser.add_argument("--rate", type=float, default=12.0,
                        help="simulated webhooks per second (12/s is about 1M a day)")
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--retention-days", type=int, default=30)
    args = parser.parse_args()

    rng = random.Random(7)
    with tempfile.TemporaryDirectory() as scratch:
        path = Path(scratch) / "size.db"
        engine = make_engine(f"sqlite:///{path}", sqlite_synchronous="NORMAL")
        upgrade(engine)
        start = 1_795_000_000.0
        clock = Clock(start)
        writer = Writer(engine, clock=clock)
        pending: list[NewEvent] = []
        webhooks = 0
        began = time.perf_counter()
        for _ in range(args.lifecycles):
            bodies = lifecycle(
                rng=rng, now=clock.now, model=f"acme/model-{rng.randrange(10)}",
                deployment=f"acme/deploy-{rng.randrange(20)}", version=f"v{rng.randrange(3)}",
                fail=rng.random() < 0.1,
            )
            for body in bodies:
                raw = json.dumps(body, separators=(",", ":")).encode()
                pending.append(event(raw, f"msg_{webhooks:010d}", clock.now))
                webhooks += 1
                clock.now += 1.0 / args.rate
                if len(pending) >= args.batch:
                    writer.commit(pending)
                    pending = []
        if pending:
            writer.commit(pending)
        elapsed = time.perf_counter() - began
        engine.dispose()

        span_days = (clock.now - start) / DAY
        sizes = table_sizes(path)
        total = sum(sizes.values())
        scale = 1_000_000 / webhooks
        print(f"{webhooks} webhooks ({args.lifecycles} lifecycles, {webhooks / args.lifecycles:.0f}"
              f" each) committed in {elapsed:.1f} s; {span_days:.2f} simulated days at "
              f"{args.rate:g}/s; file {path.stat().st_size / MB:.1f} MB")
        print(f"{'table (with indexes)':28} {'rows':>9} {'MB':>8} {'bytes/row':>10} "
              f"{'MB per 1M webhooks':>19}")
        for table in sorted(sizes, key=lambda t: -sizes[t]):
            n = rows(path, table) if table in ("events", "predictions", "outcome_buckets") else 0
            per_row = f"{sizes[table] / n:10.0f}" if n else f"{'':10}"
            if sizes[table] < 64 * 1024:
                continue
            print(f"{table:28} {n:9} {sizes[table] / MB:8.1f} {per_row} "
                  f"{sizes[table] * scale / MB:19.1f}")
        per_million = total * scale / MB
        growing = (sizes.get("events", 0) + sizes.get("predictions", 0)) * scale / MB
        print(f"database size per million webhooks: {per_million:.0f} MB "
              f"(events and predictions {growing:.0f} MB; buckets grow with time and scopes, "
              f"not with webhooks)")

        engine = make_engine(f"sqlite:///{path}", sqlite_synchronous="NORMAL")
        report = prune_old(engine, now=clock.now + (args.retention_days + 1) * DAY,
                           retention_days=args.retention_days, max_chunks=10_000)
        engine.dispose()
        after = table_sizes(path)
        kept = (after.get("predictions", 0) + after.get("outcome_buckets", 0)) * scale / MB
        print(f"after retention ({args.retention_days} days) pruned {report.events} events and "
              f"{report.outcome_buckets} minute buckets: "
              f"{kept:.0f} MB per million webhooks stays for good (predictions, hourly and "
              f"daily buckets); freed pages are reused, the file does not shrink")
        per_day = args.rate * DAY / 1_000_000
        print(f"steady state at {args.rate:g}/s ({per_day:.2f}M webhooks/day) and "
              f"{args.retention_days}-day retention: about "
              f"{(sizes.get('events', 0) * scale / MB) * per_day * args.retention_days / 1024:.1f}"
              f" GB of events, plus {kept * per_day:.0f} MB a day that stays")


if __name__ == "__main__":
    main()
