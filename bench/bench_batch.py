"""The writer's transaction alone: CPU and wall time per event for each traffic shape and batch
size, on a fresh SQLite file with the writer process's own connection (synchronous=FULL).

No HTTP, no event loop, no pipe: what `storage.transaction.commit_events` costs the writer
process per event, the figure the writer's share of bench_ingest.py's load comes from. With
--tally, each batch is committed as the writer process does under load: its outcomes journaled
and folded (storage.deferral), the fold written with the first batch after FLUSH_EVERY at
5,000 events/s, the WAL checkpointed every CHECKPOINT_EVERY events after the commit.

On Linux it also prints the bytes and write calls per event (/proc/self/io): unlike CPU time
on a shared machine, these do not move between runs, so a change to what the writer stores
can be judged from one.

    .venv/bin/python bench/bench_batch.py [--events 6000] [--sizes 8,32,128] [--tally]
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.shapes import SHAPES, requests  # noqa: E402
from hookwatch.hooks.payload import read_prediction  # noqa: E402
from hookwatch.storage.batch import NewEvent  # noqa: E402
from hookwatch.storage.deferral import Deferral  # noqa: E402
from hookwatch.storage.engine import make_engine, writer_process_config  # noqa: E402
from hookwatch.storage.migrate import upgrade  # noqa: E402
from hookwatch.storage.transaction import commit_events  # noqa: E402
from hookwatch.storage.writer_child import _Connection  # noqa: E402


def events(shape: str, count: int, now: float) -> list[NewEvent]:
    out = []
    for line in requests(SHAPES[shape], count, "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw", now):
        msg_id, ts, _sig, body = line.rstrip("\n").split("\t", 3)
        raw = body.encode()
        fields = read_prediction(json.loads(raw), {})
        out.append(NewEvent(dedup_key="id:" + msg_id, source="signed", received_at=now,
                            sent_at=float(ts), headers='{"content-type":"application/json"}',
                            body=raw, **fields))
    return out


def written() -> tuple[int, int]:
    """(bytes, calls) this process has passed to write calls; zeros where /proc has no io."""
    try:
        lines = Path("/proc/self/io").read_text().splitlines()
    except OSError:
        return 0, 0
    io = dict(line.split(": ") for line in lines if ": " in line)
    return int(io["wchar"]), int(io["syscw"])


def run(shape: str, size: int, count: int, tmp: Path, *, tally: bool = False
        ) -> tuple[float, float, float, float]:
    """Per event: wall us, CPU us, bytes written, write calls."""
    path = tmp / f"{shape}-{size}-{int(tally)}.db"
    engine = make_engine(f"sqlite:///{path}")
    upgrade(engine)
    config = writer_process_config(engine, sqlite_synchronous="FULL")
    engine.dispose()
    assert config is not None
    if not tally:  # the connection as it was before the tally: SQLite checkpoints in commits
        config.setup = [s for s in config.setup if "wal_autocheckpoint" not in s]
    connection = _Connection(config)
    deferral = Deferral(connection.lend, path, dialect="sqlite", retries=3) if tally else None
    now = time.time()
    batch = events(shape, count, now)
    wall0, cpu0, (bytes0, calls0) = time.perf_counter(), time.process_time(), written()
    for start in range(0, len(batch), size):
        at = now + start / 5000
        part = batch[start:start + size]
        if deferral is None:
            commit_events(connection.lend, part, now=at, dialect="sqlite", retries=3,
                          retried=[])
            continue
        deferral.plan(False, at)
        then = deferral.then()
        result = commit_events(connection.lend, part, now=at, dialect="sqlite", retries=3,
                               retried=[], journal=deferral.journal_owner(), then=then)
        deferral.committed(result, at, flushed=then is not None, now=at)
        if connection.checkpoint_due(len(part)):
            connection.checkpoint()
    if deferral is not None:
        deferral.flush_alone(now, everything=True)
        deferral.close()
    wall, cpu = time.perf_counter() - wall0, time.process_time() - cpu0
    bytes1, calls1 = written()
    connection.conn.close()
    n = len(batch)
    return wall / n * 1e6, cpu / n * 1e6, (bytes1 - bytes0) / n, (calls1 - calls0) / n


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=6000)
    parser.add_argument("--sizes", default="8,32,128")
    parser.add_argument("--shapes", default=",".join(SHAPES))
    parser.add_argument("--tally", action="store_true",
                        help="fold bucket increments as the writer process does under load")
    args = parser.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="hookwatch-batch-"))
    sizes = [int(s) for s in args.sizes.split(",")]
    head = "batch {}: wall/CPU us, KB/writes"
    print(f"{'shape':16}" + "".join(f"{head.format(s):>38}" for s in sizes))
    for shape in args.shapes.split(","):
        cells = [run(shape, size, args.events, tmp, tally=args.tally) for size in sizes]
        print(f"{shape:16}" + "".join(f"{w:>15.0f} / {c:>5.0f}, {b / 1024:>6.1f} / {k:>5.1f}"
                                      for w, c, b, k in cells), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
