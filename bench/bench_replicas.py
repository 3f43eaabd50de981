"""Scale-out benchmark: ingest on PostgreSQL with one and two replicas, and the takeover time.

Each replica is a real `hookwatch serve` process. The load is the receiver benchmark's: wrk
replaying pre-signed, distinct webhooks of each traffic shape (bench/shapes.py, replay.lua).
With two replicas, two wrk processes split the same connections between them (what a
round-robin load balancer does).
Each run starts on an empty schema; afterwards the stored events must equal the 2xx answers.
Takeover: SIGKILL the leader, and time until the other replica's /readyz says it leads.

    .venv/bin/python bench/bench_replicas.py [--duration 5] [--connections 32] [--shapes ...]
        [--database postgresql+psycopg://postgres@127.0.0.1:5432/test] [--takeovers 5]
"""

from __future__ import annotations

import argparse
import os
import re
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

import httpx
from sqlalchemy import create_engine, text

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.bench_ingest import free_port  # noqa: E402
from bench.shapes import SHAPES, Shape, write_requests  # noqa: E402
from hookwatch.storage.engine import make_engine  # noqa: E402
from hookwatch.storage.migrate import upgrade  # noqa: E402

SECRET = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
HOOKWATCH = str(Path(sys.executable).parent / "hookwatch")
DEFAULT_DB = os.environ.get(
    "HOOKWATCH_TEST_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test"
)


class Schema:
    """A fresh schema on the server, migrated; dropped at the end."""

    def __init__(self, base: str) -> None:
        self.name = f"hwbench_{uuid.uuid4().hex[:10]}"
        self.admin = create_engine(base, isolation_level="AUTOCOMMIT")
        with self.admin.connect() as conn:
            conn.execute(text(f"CREATE SCHEMA {self.name}"))
        sep = "&" if "?" in base else "?"
        self.url = f"{base}{sep}options=-csearch_path%3D{self.name}"
        engine = make_engine(self.url)
        upgrade(engine)
        engine.dispose()

    def count(self, table: str) -> int:
        engine = make_engine(self.url)
        with engine.connect() as conn:
            n = int(conn.execute(text(f"SELECT count(*) FROM {table}")).scalar_one())
        engine.dispose()
        return n

    def drop(self) -> None:
        with self.admin.connect() as conn:
            conn.execute(text(f"DROP SCHEMA {self.name} CASCADE"))
        self.admin.dispose()


class Replica:
    def __init__(self, port: int, database: str, logs: Path) -> None:
        self.port, self.database, self.log = port, database, logs / f"replica-{port}.log"
        self.url = f"http://127.0.0.1:{port}"
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> Replica:
        env = {**os.environ, "HOOKWATCH_DATABASE_URL": self.database,
               "HOOKWATCH_WEBHOOK_SECRETS": SECRET, "PYTHONUNBUFFERED": "1"}
        with self.log.open("ab") as out:
            self.proc = subprocess.Popen(
                [HOOKWATCH, "serve", "--port", str(self.port), "--log-level", "warning"],
                env=env, cwd=ROOT, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
        return self

    def role(self) -> str | None:
        try:
            ready = httpx.get(self.url + "/readyz", timeout=1).json()
        except (httpx.HTTPError, ValueError):
            return None
        return str(ready["checks"]["leadership"]["role"])

    def wait_role(self, *roles: str, timeout: float = 60) -> str:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            role = self.role()
            if role in roles:
                return role
            time.sleep(0.02)
        raise RuntimeError(f"replica {self.port} not {roles}:\n{self.log.read_text()[-2000:]}")

    def answered_2xx(self) -> int:
        total = 0.0
        for line in httpx.get(self.url + "/metrics", timeout=5).text.splitlines():
            if line.startswith("hookwatch_webhooks_received_total{") and (
                'result="recorded"' in line or 'result="duplicate"' in line
            ):
                total += float(line.rsplit(" ", 1)[1])
        return int(total)

    def signal(self, sig: int) -> None:
        if self.proc is not None and self.proc.poll() is None:
            os.killpg(self.proc.pid, sig)
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait()


def wrk(url: str, requests: Path, duration: int, connections: int,
        threads: int) -> subprocess.Popen[str]:
    return subprocess.Popen(
        ["wrk", f"-t{threads}", f"-c{connections}", f"-d{duration}s", "--timeout", "10s",
         "-s", str(ROOT / "bench" / "replay.lua"), url + "/hooks/replicate", "--",
         str(requests), str(threads)],
        stdout=subprocess.PIPE, text=True)


def result(proc: subprocess.Popen[str]) -> dict[str, float]:
    out, _ = proc.communicate()
    match = re.search(r"RESULT (.*)", out)
    if proc.returncode != 0 or not match:
        raise RuntimeError(out)
    return {k: float(v) for k, v in (kv.split("=") for kv in match.group(1).split())}


def ingest(n: int, shape: Shape, args: argparse.Namespace, tmp: Path) -> dict[str, Any]:
    """n replicas on one fresh schema, each driven by its own wrk; summed figures."""
    schema = Schema(args.database)
    replicas = [Replica(free_port(), schema.url, tmp) for i in range(n)]
    try:
        replicas[0].start().wait_role("leader")  # the first one up leads
        for r in replicas[1:]:
            r.start().wait_role("follower")
        per = args.requests // n
        files = []
        for i in range(n):
            files.append(tmp / f"requests-{n}-{i}.tsv")
            write_requests(files[-1], shape, per, SECRET, time.time(), seed=100 * n + i,
                           prefix=f"r{n}x{i}")
        runs = [wrk(r.url, f, args.duration, args.connections // n, threads=1)
                for r, f in zip(replicas, files, strict=True)]
        parts = [result(p) for p in runs]
        time.sleep(0.5)  # requests wrk abandoned at its deadline finish
        sent = sum(r.answered_2xx() for r in replicas)
        stored = schema.count("events")
    finally:
        for r in replicas:
            r.signal(signal.SIGTERM)
        schema.drop()
    return {
        "rps": sum(p["rps"] for p in parts),
        "p50_ms": max(p["p50_us"] for p in parts) / 1000,
        "p99_ms": max(p["p99_us"] for p in parts) / 1000,
        "ok": sum(p["ok"] for p in parts), "bad": sum(p["bad"] for p in parts),
        "exhausted": any(p["exhausted"] for p in parts), "sent": sent, "stored": stored,
    }


def takeovers(args: argparse.Namespace, tmp: Path) -> list[float]:
    """SIGKILL the leader; seconds until the survivor's /readyz says it leads. Repeated."""
    schema = Schema(args.database)
    replicas = [Replica(free_port(), schema.url, tmp) for i in range(2)]
    times: list[float] = []
    try:
        replicas[0].start().wait_role("leader")
        replicas[1].start().wait_role("follower")
        for _ in range(args.takeovers):
            leader = next(r for r in replicas if r.role() == "leader")
            other = next(r for r in replicas if r is not leader)
            began = time.monotonic()
            leader.signal(signal.SIGKILL)
            other.wait_role("leader", timeout=30)
            times.append(time.monotonic() - began)
            leader.start().wait_role("follower")
    finally:
        for r in replicas:
            r.signal(signal.SIGTERM)
        schema.drop()
    return times


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--duration", type=int, default=5)
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument("--shapes", default=",".join(SHAPES),
                        help=f"comma-separated, of: {', '.join(SHAPES)} (default: all)")
    parser.add_argument("--requests", type=int, default=60_000, help="per run, split by replica")
    parser.add_argument("--database", default=DEFAULT_DB, help="a PostgreSQL URL")
    parser.add_argument("--takeovers", type=int, default=5, help="0: skip the takeover test")
    args = parser.parse_args()
    shapes = [SHAPES[name] for name in args.shapes.split(",")]
    tmp = Path(tempfile.mkdtemp(prefix="hookwatch-replicas-"))
    print(f"machine: {os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.2f}; "
          f"database {args.database.split('@')[-1]}; wrk {args.connections} connections, "
          f"{args.duration} s", flush=True)

    rows = {}
    for shape in shapes:
        for n in (1, 2):
            print(f"{shape.name}: ingest with {n} replica(s) ...", flush=True)
            rows[(shape.name, n)] = ingest(n, shape, args, tmp)
    times = []
    if args.takeovers:
        print(f"takeover x{args.takeovers} ...", flush=True)
        times = takeovers(args, tmp)

    print()
    print(f"{'shape':16}{'replicas':>9}{'req/s':>9}{'p50 ms':>9}{'p99 ms':>9}{'2xx':>9}"
          f"{'non-2xx':>9}{'stored':>9}  stored = 2xx sent")
    good = True
    for (name, n), r in rows.items():
        equal = r["stored"] == r["sent"]
        good = good and equal and r["bad"] == 0 and not r["exhausted"]
        print(f"{name if n == 1 else '':16}{n:>9}{r['rps']:>9.0f}{r['p50_ms']:>9.2f}"
              f"{r['p99_ms']:>9.2f}{r['ok']:>9.0f}{r['bad']:>9.0f}{r['stored']:>9}  "
              f"{'EQUAL' if equal else 'MISMATCH ' + str(r['sent'])}"
              + ("  (wrk ran out of distinct requests: raise --requests)" if r["exhausted"]
                 else ""))
    for shape in shapes:
        one, two = rows[(shape.name, 1)], rows[(shape.name, 2)]
        print(f"{shape.name}: two replicas / one {two['rps'] / one['rps']:.2f}x throughput")
    print(f"(on {os.cpu_count()} CPUs shared by wrk, PostgreSQL and the replicas)")
    if times:
        print(f"takeover after SIGKILL of the leader (leader poll 1 s): "
              f"min {min(times):.2f} s, median {statistics.median(times):.2f} s, "
              f"max {max(times):.2f} s over {len(times)}")
    return 0 if good else 1


if __name__ == "__main__":
    sys.exit(main())
