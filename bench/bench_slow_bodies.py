"""Slow bodies: --connections connections (400, the issue's probe) to a real `hookwatch serve`,
each declaring a body just under the 1 MiB cap and trickling it in over --trickle seconds
(within the 10 s deadline), once per way of authenticating: none, a wrong bearer token, a
stale signature timestamp (all three refused on the head, before the body), and a well-formed
signature that matches nothing (refused only after its body; admitted up to the 64 MiB
buffered-bytes budget, the rest 503). Prints the web process's resident memory before, at
its peak and after, the slowest answer and the answers. Goal: peak under 200 MB.

    PYTHONPATH=. .venv/bin/python bench/bench_slow_bodies.py [--connections 400]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests.reliability.bodyprobe import KINDS, run_body_probe  # noqa: E402


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--connections", type=int, default=400)
    parser.add_argument("--trickle", type=float, default=5.0, help="seconds each body takes")
    parser.add_argument("--kind", choices=KINDS, action="append", help="default: all")
    args = parser.parse_args()
    worst = 0
    for kind in args.kind or KINDS:
        with tempfile.TemporaryDirectory() as tmp:
            figures = run_body_probe(Path(tmp), kind, args.connections, trickle=args.trickle)
        print(figures.summary(), flush=True)
        worst = max(worst, figures.peak)
    print(f"highest peak {worst / 1e6:.0f} MB (goal: under 200 MB)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
