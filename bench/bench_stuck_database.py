"""A stuck database: another process holds SQLite's write lock for --hold seconds (100 by
default, the issue's probe) under a real `hookwatch serve`, with the default busy timeout,
while --senders senders keep posting token-authenticated webhooks (each pausing --pause s).

Prints the time from taking the lock to the first 503, the slowest answer to a request sent
while locked, the answers and /readyz answers while locked, how soon after the release a
webhook is accepted and /readyz is ready again, how many 200s were missing from the database
afterwards (must be 0), and the tracebacks in the service's log.

    PYTHONPATH=. .venv/bin/python bench/bench_stuck_database.py [--hold 100]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests.reliability.lockprobe import run_lock_probe  # noqa: E402


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--hold", type=float, default=100.0, help="seconds the lock is held")
    parser.add_argument("--senders", type=int, default=4)
    parser.add_argument("--pause", type=float, default=0.1, help="seconds between a sender's posts")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        print(f"holding the write lock {args.hold:.0f} s ...", flush=True)
        figures = run_lock_probe(Path(tmp), args.hold, senders=args.senders, pause=args.pause)
    print(figures.summary())
    return 1 if figures.missing else 0


if __name__ == "__main__":
    sys.exit(main())
