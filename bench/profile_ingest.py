"""Profile hookwatch's two processes under one traffic shape: py-spy on the web process and on
the writer process while wrk replays that shape's requests (bench/bench_ingest.py's load).

Writes py-spy's collapsed stacks (one file per process, `flamegraph.pl`-ready) and prints the
functions with the most samples, own and cumulative. Needs `pip install py-spy`; run as root or
with ptrace allowed.

    .venv/bin/python bench/profile_ingest.py --shape completed-1000 --duration 8
"""

from __future__ import annotations

import argparse
import collections
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.bench_ingest import (  # noqa: E402
    SECRET,
    VENV_BIN,
    children,
    free_port,
    run_wrk,
    start_hookwatch,
    stop,
)
from bench.shapes import SHAPES, write_requests  # noqa: E402


def top(collapsed: Path, limit: int) -> str:
    own: collections.Counter[str] = collections.Counter()
    cumulative: collections.Counter[str] = collections.Counter()
    total = 0
    for line in collapsed.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        frames = stack.split(";")
        n = int(count)
        total += n
        own[frames[-1]] += n
        for frame in set(frames):
            cumulative[frame] += n
    out = [f"{collapsed.name}: {total} samples"]
    for title, counter in (("own", own), ("cumulative", cumulative)):
        out.append(f"  -- {title}")
        out += [f"  {n * 100 / max(1, total):5.1f}%  {frame}"
                for frame, n in counter.most_common(limit)]
    return "\n".join(out)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--shape", default="completed-20", choices=sorted(SHAPES))
    parser.add_argument("--duration", type=int, default=8)
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--top", type=int, default=25)
    parser.add_argument("--idle", action="store_true",
                        help="sample waiting threads too: where a process waits, not only works")
    parser.add_argument("--out", type=Path, default=None, help="folder for the stacks")
    args = parser.parse_args()
    args.port = free_port()
    tmp = Path(tempfile.mkdtemp(prefix="hookwatch-profile-"))
    out = args.out or tmp
    out.mkdir(parents=True, exist_ok=True)
    requests = tmp / "requests.tsv"
    write_requests(requests, SHAPES[args.shape], 16_000 * (args.duration + 2), SECRET,
                   time.time())
    hw = start_hookwatch(args.port, f"sqlite:///{tmp}/profile.db", tmp / "hookwatch.log")
    spies: list[subprocess.Popen[bytes]] = []
    try:
        writer = children(hw.pid)
        for name, pid in [("web", hw.pid), *(("writer", p) for p in writer)]:
            spies.append(subprocess.Popen(
                [str(VENV_BIN / "py-spy"), "record", "--nonblocking", "--rate", "250",
                 "--format", "raw", "--duration", str(args.duration), "--pid", str(pid), "--output",
                 str(out / f"{name}.txt"), *(["--idle"] if args.idle else [])],
                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
        result = run_wrk(args, args.port, requests, args.duration)
        for spy in spies:
            spy.wait(timeout=60)
    finally:
        stop(hw)
    print(f"{args.shape}: {result['rps']:,.0f} webhooks/s under py-spy, p50 "
          f"{result['p50_us'] / 1000:.1f} ms, p99 {result['p99_us'] / 1000:.1f} ms")
    for name in ("web", "writer"):
        if (out / f"{name}.txt").exists():
            print(top(out / f"{name}.txt", args.top))
    print(f"collapsed stacks in {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
