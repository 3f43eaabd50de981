"""The storage path without HTTP: many requests awaiting `Writer.submit`, the real writer process.

What hookwatch's ingest could reach if the web process did nothing but hand events to the
writer: `--submitters` coroutines (32, like bench_ingest.py's wrk connections) each submit
their next event as soon as the last one is committed, on uvloop, to a `storage.writer.Writer`
with its writer process on a fresh SQLite file (synchronous=FULL), the service's own batching,
merging, tally and checkpoints. Prints per shape committed events/s, the mean transaction and
the CPU per event of each process. Set beside bench_ingest.py's figures it separates what the
writer path can carry from what the two processes lose taking turns with HTTP on a small
machine (bench/README.md).

    .venv/bin/python bench/bench_writer.py [--events 20000] [--submitters 32] [--shapes ...]
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import tempfile
import time
from pathlib import Path

import uvloop

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.bench_batch import events  # noqa: E402
from bench.bench_ingest import cpu_seconds  # noqa: E402
from bench.shapes import SHAPES  # noqa: E402
from hookwatch.storage.engine import make_engine, writer_process_config  # noqa: E402
from hookwatch.storage.migrate import upgrade  # noqa: E402
from hookwatch.storage.writer import Writer  # noqa: E402


async def run(shape: str, count: int, submitters: int, tmp: Path) -> dict[str, float]:
    engine = make_engine(f"sqlite:///{tmp / shape}.db")
    upgrade(engine)
    writer = Writer(engine, process=writer_process_config(engine, sqlite_synchronous="FULL"))
    await writer.start()
    child = writer.process_id
    assert child is not None, "the writer process did not start"
    batch = events(shape, count, time.time())  # whole lifecycles: a few more than count
    count = len(batch)
    queue = iter(batch)
    duplicates = 0

    async def submitter() -> None:
        nonlocal duplicates
        for event in queue:
            duplicates += await writer.submit(event)

    wall, cpu, child_cpu = time.perf_counter(), time.process_time(), cpu_seconds(child)
    await asyncio.gather(*(submitter() for _ in range(submitters)))
    wall = time.perf_counter() - wall
    cpu, child_cpu = time.process_time() - cpu, cpu_seconds(child) - child_cpu
    batches, committed = writer.batches, writer.events
    await writer.stop()
    engine.dispose()
    if duplicates or committed != count:
        raise SystemExit(f"{shape}: {committed} of {count} committed, {duplicates} duplicates")
    return {"rate": count / wall, "batch": committed / batches,
            "web": cpu / count * 1e6, "writer": child_cpu / count * 1e6}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=20_000)
    parser.add_argument("--submitters", type=int, default=32)
    parser.add_argument("--shapes", default=",".join(SHAPES))
    args = parser.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="hookwatch-writer-"))
    print(f"{args.submitters} submitters, {args.events:,} events a shape, SQLite "
          "synchronous=FULL, the writer in its own process")
    print(f"{'shape':16}{'events/s':>10}{'batch':>8}{'web CPU us':>12}{'writer CPU us':>15}")
    for shape in args.shapes.split(","):
        r = uvloop.run(run(shape, args.events, args.submitters, tmp))
        print(f"{shape:16}{r['rate']:>10,.0f}{r['batch']:>8.1f}{r['web']:>12.1f}"
              f"{r['writer']:>15.1f}", flush=True)
    print("web CPU: this process's (submitting, pickling, answering), per event; writer CPU: "
          "the writer process's")
    return 0


if __name__ == "__main__":
    sys.exit(main())
