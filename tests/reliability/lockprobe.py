"""The stuck-database probe: another process holds SQLite's write lock under a real `hookwatch
serve` while senders keep posting; what the senders and /readyz saw, and what was stored.

Shared by tests/reliability/test_stuck_database.py (20 s, with assertions) and
bench/bench_stuck_database.py (100 s, figures).
"""

from __future__ import annotations

import json
import sqlite3
import subprocess
import sys
import threading
import time
import uuid
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import httpx

from tests.conftest import TOKEN
from tests.reliability.helpers import Serve

# Holds BEGIN IMMEDIATE (SQLite's write lock, https://www.sqlite.org/lang_transaction.html)
# until its stdin closes.
LOCKER = """
import sqlite3, sys
conn = sqlite3.connect(sys.argv[1], isolation_level=None, timeout=30)
conn.execute("BEGIN IMMEDIATE")
print("locked", flush=True)
sys.stdin.read()
conn.execute("ROLLBACK")
"""


@dataclass
class Answer:
    sent: float  # monotonic
    took: float
    status: int  # 0: no answer (connection error or client timeout)
    prediction_id: str
    retry_after: str | None = None
    error: str | None = None


@dataclass
class LockFigures:
    hold: float
    answers: list[Answer] = field(default_factory=list)
    ready: list[tuple[float, int, str]] = field(default_factory=list)  # (at, status, commits)
    locked_at: float = 0.0
    released_at: float = 0.0
    missing: list[str] = field(default_factory=list)  # acknowledged, not stored
    log: str = ""

    def during(self) -> list[Answer]:
        return [a for a in self.answers if self.locked_at <= a.sent < self.released_at]

    def first_503_after(self) -> float | None:
        """Seconds from taking the lock to the first 503 a sender got."""
        ends = [a.sent + a.took for a in self.during() if a.status == 503]
        return min(ends) - self.locked_at if ends else None

    def slowest_during(self) -> float:
        return max((a.took for a in self.during()), default=0.0)

    def accepted_again_after(self) -> float | None:
        """Seconds from releasing the lock to the first 200 for a webhook sent after it."""
        oks = [a.sent + a.took for a in self.answers
               if a.sent >= self.released_at and a.status == 200]
        return min(oks) - self.released_at if oks else None

    def ready_again_after(self) -> float | None:
        after = [at for at, status, _ in self.ready if at >= self.released_at and status == 200]
        return min(after) - self.released_at if after else None

    def ready_during(self) -> Counter[int]:
        """/readyz answers from stall_after into the lock until its release."""
        return Counter(s for at, s, _ in self.ready
                       if self.locked_at + 4 <= at < self.released_at)

    def acknowledged(self) -> int:
        return sum(1 for a in self.answers if a.status == 200)

    def summary(self) -> str:
        counts = Counter(a.status for a in self.answers)
        during = Counter(a.status for a in self.during())
        first = self.first_503_after()
        again = self.accepted_again_after()
        ready_again = self.ready_again_after()
        return "\n".join([
            f"lock held {self.hold:.0f} s",
            f"  first 503          {first:.2f} s after the lock" if first is not None
            else "  first 503          none",
            f"  slowest answer     {self.slowest_during():.2f} s (requests sent while locked)",
            f"  answers while locked {dict(sorted(during.items()))}; all {dict(sorted(counts.items()))}",
            f"  /readyz while locked {dict(sorted(self.ready_during().items()))}",
            f"  accepted again     {again:.2f} s after release" if again is not None
            else "  accepted again     never",
            f"  ready again        {ready_again:.2f} s after release" if ready_again is not None
            else "  ready again        never",
            f"  acknowledged       {self.acknowledged()}, missing from the database "
            f"{len(self.missing)}",
            f"  tracebacks in log  {self.log.count('Traceback')}",
            f"  jobs refused       {self.log.count('the database refused')} log lines",
            *[f"    {line}" for line in self.log.splitlines()
              if "the database refused" in line][:3],
        ])


def run_lock_probe(
    workdir: Path, hold: float, *, senders: int = 4, pause: float = 0.1,
    warmup: float = 2.0, cooldown: float = 5.0, env: dict[str, str] | None = None,
) -> LockFigures:
    database = workdir / "hookwatch.db"
    serve = Serve(workdir, {
        "HOOKWATCH_DATABASE_URL": f"sqlite:///{database}",
        "HOOKWATCH_INGEST_TOKEN": TOKEN,
        "HOOKWATCH_WEBHOOK_SECRETS": "",
        "HOOKWATCH_EVALUATE_INTERVAL": "1",
        **(env or {}),
    })
    figures = LockFigures(hold)
    stop = threading.Event()
    lock = threading.Lock()
    serve.start()
    try:
        url = serve.url

        def send(n: int) -> None:
            with httpx.Client(timeout=120) as client:
                i = 0
                while not stop.is_set():
                    pid = f"lock-{n}-{i}-{uuid.uuid4().hex[:6]}"
                    i += 1
                    body = json.dumps({"id": pid, "status": "failed", "model": "acme/lock",
                                       "error": "boom"}).encode()
                    began = time.monotonic()
                    try:
                        r = client.post(url + "/hooks/replicate", content=body, headers={
                            "content-type": "application/json",
                            "authorization": f"Bearer {TOKEN}"})
                        answer = Answer(began, time.monotonic() - began, r.status_code, pid,
                                        r.headers.get("retry-after"),
                                        r.json().get("error") if r.status_code != 200 else None)
                    except httpx.HTTPError:
                        answer = Answer(began, time.monotonic() - began, 0, pid)
                    with lock:
                        figures.answers.append(answer)
                    stop.wait(pause)

        def watch_ready() -> None:
            with httpx.Client(timeout=10) as client:
                while not stop.is_set():
                    at = time.monotonic()
                    try:
                        r = client.get(url + "/readyz")
                        commits = str(r.json().get("checks", {}).get("commits"))
                        figures.ready.append((at, r.status_code, commits))
                    except httpx.HTTPError:
                        figures.ready.append((at, 0, "no answer"))
                    stop.wait(0.5)

        threads = [threading.Thread(target=send, args=(n,), daemon=True) for n in range(senders)]
        threads.append(threading.Thread(target=watch_ready, daemon=True))
        for t in threads:
            t.start()
        time.sleep(warmup)
        locker = subprocess.Popen([sys.executable, "-c", LOCKER, str(database)],
                                  stdin=subprocess.PIPE, stdout=subprocess.PIPE)
        try:
            assert locker.stdout is not None and locker.stdout.readline() == b"locked\n"
            figures.locked_at = time.monotonic()
            time.sleep(hold)
        finally:
            assert locker.stdin is not None
            locker.stdin.close()
            locker.wait(timeout=30)
        figures.released_at = time.monotonic()
        # Until accepted and ready again (or 60 s), then a little more.
        deadline = figures.released_at + 60
        while time.monotonic() < deadline and (
            figures.accepted_again_after() is None or figures.ready_again_after() is None
        ):
            time.sleep(0.2)
        time.sleep(cooldown)
        stop.set()
        for t in threads:
            t.join(timeout=130)
    finally:
        stop.set()
        serve.stop()
        figures.log = serve.log_text()
    acked = {a.prediction_id for a in figures.answers if a.status == 200}
    with sqlite3.connect(database) as conn:
        stored = {row[0] for row in conn.execute("SELECT prediction_id FROM events")}
    figures.missing = sorted(acked - stored)
    return figures
