"""Resident memory of hookwatch's two processes through a long run of one traffic shape.

bench_ingest.py reads memory at the end of 5-second runs; a service runs for days. This drives
one shape with wrk for `--duration` seconds on a fresh SQLite file (synchronous=FULL) and
prints both processes' resident memory every `--every` seconds, with a sparkline, then the
peak, and checks that the events stored equal the 2xx answers sent.

    .venv/bin/python bench/soak_memory.py --shape completed-1000 --duration 90
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

from sqlalchemy import create_engine, text

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.bench_ingest import (  # noqa: E402
    SECRET,
    answered_2xx,
    children,
    free_port,
    memory_mib,
    start_hookwatch,
    stop,
)
from bench.shapes import SHAPES, write_requests  # noqa: E402

BARS = "▁▂▃▄▅▆▇█"


def sparkline(values: list[float]) -> str:
    low, high = min(values), max(values)
    span = (high - low) or 1.0
    return "".join(BARS[int((v - low) / span * (len(BARS) - 1))] for v in values)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--shape", choices=sorted(SHAPES), default="completed-1000")
    parser.add_argument("--duration", type=int, default=90, help="seconds of load")
    parser.add_argument("--every", type=float, default=5.0, help="seconds between readings")
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument("--rate", type=int, default=6_000,
                        help="distinct requests prepared per second of --duration")
    args = parser.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="hookwatch-soak-"))
    requests = tmp / "requests.tsv"
    print(f"preparing {args.rate * args.duration:,} {args.shape} requests ...", flush=True)
    write_requests(requests, SHAPES[args.shape], args.rate * args.duration, SECRET, time.time())
    port, database = free_port(), f"sqlite:///{tmp}/soak.db"
    hw = start_hookwatch(port, database, tmp / "hookwatch.log")
    web: list[float] = []
    writer: list[float] = []
    try:
        wrk = threading.Thread(target=subprocess.run, daemon=True, args=([
            "wrk", "-t1", f"-c{args.connections}", f"-d{args.duration}s", "--timeout", "10s",
            "-s", str(ROOT / "bench" / "replay.lua"), f"http://127.0.0.1:{port}/hooks/replicate",
            "--", str(requests), "1"],), kwargs={"capture_output": True, "check": True})
        started = time.monotonic()
        wrk.start()
        print(f"{'s':>5} {'web MiB':>8} {'writer MiB':>10} {'together':>9}")
        while wrk.is_alive():
            wrk.join(args.every)
            web.append(memory_mib(hw.pid)[0])
            writer.append(sum(memory_mib(child)[0] for child in children(hw.pid)))
            print(f"{time.monotonic() - started:5.0f} {web[-1]:8.0f} {writer[-1]:10.0f} "
                  f"{web[-1] + writer[-1]:9.0f}", flush=True)
        time.sleep(0.5)
        sent = answered_2xx(port)
        peak_web = memory_mib(hw.pid)[1]
        peak_writer = sum(memory_mib(child)[1] for child in children(hw.pid))
    finally:
        stop(hw)
    engine = create_engine(database)
    with engine.connect() as conn:
        stored = conn.execute(text("SELECT count(*) FROM events")).scalar_one()
    engine.dispose()
    together = [a + b for a, b in zip(web, writer, strict=True)]
    print(f"\n{args.shape}, {args.duration} s: together {sparkline(together)} "
          f"{together[0]:.0f} -> {together[-1]:.0f} MiB; peak web {peak_web:.0f} + writer "
          f"{peak_writer:.0f} = {peak_web + peak_writer:.0f} MiB")
    print(f"stored {stored} = 2xx {sent}" if stored == sent
          else f"MISMATCH stored {stored}, 2xx sent {sent}")
    return 0 if stored == sent else 1


if __name__ == "__main__":
    sys.exit(main())
