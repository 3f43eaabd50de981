"""Crash safety: SIGKILL `hookwatch serve` under load; every webhook answered 2xx survives.

The load is signed lifecycles from 16 concurrent senders. After the kill the service restarts on
the same SQLite file; then every webhook is sent again, as Replicate retries an unanswered one,
with its original webhook-id. Each must end up stored exactly once and each terminal outcome
counted exactly once; the alert that fired before the kill, and its page still waiting in the
outbox (the pager is down), are there after it, and no second page is made. Both `synchronous`
settings survive a process crash (NORMAL gives up only power-loss durability); `pytest -s`
prints the counts.
"""

from __future__ import annotations

import asyncio
import json
import sqlite3
import time
import uuid
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pytest

from hookwatch.hooks.signature import sign
from tests.conftest import SECRET, until
from tests.notifiers.helpers import Receiver
from tests.reliability.helpers import Serve

pytestmark = pytest.mark.slow

SENDERS = 16
KILL_AFTER_ACKED = 600


@dataclass
class Load:
    url: str
    sent: dict[str, bytes] = field(default_factory=dict)  # webhook-id -> body, in send order
    acked: set[str] = field(default_factory=set)
    answers: Counter[str] = field(default_factory=Counter)
    stop: bool = False

    async def sender(self, client: httpx.AsyncClient, n: int) -> None:
        i = 0
        while not self.stop:
            pid = f"crash-{n}-{i}-{uuid.uuid4().hex[:6]}"
            i += 1
            final = "failed" if i % 4 == 0 else "succeeded"
            for status in ("starting", "processing", final):
                if self.stop:
                    return
                body = json.dumps({"id": pid, "status": status, "model": "acme/crash",
                                   "metrics": {"predict_time": 0.5}}).encode()
                msg_id = "msg_" + uuid.uuid4().hex
                self.sent[msg_id] = body
                outcome = await post(client, self.url, msg_id, body)
                self.answers[outcome] += 1
                if outcome == "200":
                    self.acked.add(msg_id)
                else:
                    return  # the server is gone: this sender stops

    async def run(self, kill: asyncio.Event, ready: Callable[[], bool]) -> None:
        limits = httpx.Limits(max_connections=SENDERS)
        async with httpx.AsyncClient(timeout=10, limits=limits) as client:
            tasks = [asyncio.create_task(self.sender(client, n)) for n in range(SENDERS)]
            while len(self.acked) < KILL_AFTER_ACKED or not ready():
                await asyncio.sleep(0.005)
            kill.set()
            await asyncio.sleep(0)  # let the killer run while requests are in flight
            await asyncio.gather(*tasks)


async def post(client: httpx.AsyncClient, url: str, msg_id: str, body: bytes) -> str:
    now = int(time.time())
    headers = {"content-type": "application/json", "webhook-id": msg_id,
               "webhook-timestamp": str(now), "webhook-signature": sign(SECRET, msg_id, now, body)}
    try:
        response = await client.post(url + "/hooks/replicate", content=body, headers=headers)
    except httpx.HTTPError as exc:
        return type(exc).__name__
    return str(response.status_code)


def rows(db: Path, sql: str) -> list[tuple[object, ...]]:
    with sqlite3.connect(db) as conn:
        return list(conn.execute(sql))


CONFIG = """
[notifiers.oncall]
type = "webhook"
url = "{url}/page"
secret = "whsec_c2VjcmV0LWZvci1jcmFzaC10ZXN0LXBhZ2Vz"

[[rules]]
name = "crash-errors"
kind = "error_rate"
scope = "model"
window = "10m"
threshold = 0.1
min_predictions = 20
severity = "critical"
notify = ["oncall"]
"""
ALERTS = "SELECT id, state, episode, fired_at FROM alerts ORDER BY id"
PAGES = "SELECT id, alert_id, kind, state FROM notifications WHERE kind = 'trigger' ORDER BY id"


@pytest.mark.parametrize("synchronous", ["FULL", "NORMAL"])
def test_sigkill_mid_load_loses_no_acknowledged_webhook(tmp_path: Path, synchronous: str) -> None:
    db = tmp_path / "crash.db"
    # The pager is down throughout: the trigger waits in the outbox across the crash.
    pager = Receiver(answer=lambda _r: (503, {}, b"down"))
    config = tmp_path / "hookwatch.toml"
    config.write_text(CONFIG.format(url=pager.url))
    serve = Serve(tmp_path, {
        "HOOKWATCH_DATABASE_URL": f"sqlite:///{db}",
        "HOOKWATCH_WEBHOOK_SECRETS": SECRET,
        "HOOKWATCH_SQLITE_SYNCHRONOUS": synchronous,
        "HOOKWATCH_CONFIG": str(config),
        "HOOKWATCH_EVALUATE_INTERVAL": "0.2",
        "HOOKWATCH_DELIVER_INTERVAL": "0.2",
    }, "--log-level", "warning")
    load = Load(serve.url)

    def paged() -> bool:
        return bool(rows(db, PAGES))

    try:
        pager.__enter__()
        serve.start()

        async def drive() -> None:
            kill = asyncio.Event()

            async def killer() -> None:
                await kill.wait()
                serve.kill()  # SIGKILL: no shutdown, no flush, no goodbye
                load.stop = True

            await asyncio.gather(load.run(kill, paged), killer())

        asyncio.run(drive())
        acked_at_kill = set(load.acked)
        in_flight = len(load.sent) - sum(n for a, n in load.answers.items() if a in ("200",))
        assert in_flight > 0, "the kill must land while requests are outstanding"
        alerts_at_kill, pages_at_kill = rows(db, ALERTS), rows(db, PAGES)

        serve.start()
        stored = {r[0] for r in rows(db, "SELECT dedup_key FROM events")}
        lost = [m for m in acked_at_kill if "id:" + m not in stored]
        assert lost == [], f"{len(lost)} acknowledged webhooks are missing after the crash"

        # The senders retry everything they sent (same webhook-id, fresh timestamp).
        async def replay() -> Counter[str]:
            answers: Counter[str] = Counter()
            queue = list(load.sent.items())

            async def retry(client: httpx.AsyncClient) -> None:
                while queue:
                    msg_id, body = queue.pop()
                    answers[await post(client, serve.url, msg_id, body)] += 1

            async with httpx.AsyncClient(timeout=10) as client:
                await asyncio.gather(*(retry(client) for _ in range(SENDERS)))
            return answers

        replayed = asyncio.run(replay())
        replay_done = time.time()  # the service's clock is the real one
        assert set(replayed) == {"200"}, replayed
        keys = [r[0] for r in rows(db, "SELECT dedup_key FROM events")]
        assert len(keys) == len(set(keys)) == len(load.sent)  # each stored exactly once
        mismatched = rows(db, (
            "SELECT p.id FROM predictions p LEFT JOIN (SELECT prediction_id, count(*) n "
            "FROM events GROUP BY prediction_id) e ON e.prediction_id = p.id "
            "WHERE p.event_count != coalesce(e.n, 0)"))
        assert mismatched == []
        terminal = rows(db, "SELECT count(*) FROM predictions WHERE rank = 2")[0][0]
        counted = rows(db, (
            "SELECT sum(succeeded + failed) FROM outcome_buckets "
            "WHERE resolution = 86400 AND scope = 'model'"))[0][0]
        assert counted == terminal  # every outcome counted once, through crash and replay

        # The firing alert and its undelivered page survived, and evaluating again after the
        # restart (the replay above ran it many times) paged nobody a second time: wait for an
        # evaluation that started after the replay (every 0.2 s) to have committed.
        until(lambda: rows(db, "SELECT evaluated_at FROM alert_evaluator")[0][0] >= replay_done,
              timeout=10, what="an evaluation after the replay")
        assert [a[1] for a in alerts_at_kill] == ["firing"]
        assert rows(db, ALERTS) == alerts_at_kill
        after = rows(db, PAGES)
        assert [p[:3] for p in after] == [p[:3] for p in pages_at_kill]
        # The outbox's states (notifiers/claims.py): waiting, or claimed under a lease.
        assert {p[3] for p in after} <= {"pending", "sending"}
        print(f"\ncrash {synchronous}: sent {len(load.sent)} webhooks, {len(acked_at_kill)} "
              f"answered 200 before SIGKILL, {in_flight} in flight at the kill, answers "
              f"{dict(load.answers)}; after restart 0 of {len(acked_at_kill)} lost, "
              f"replay of {len(load.sent)} gave {dict(replayed)}, {len(keys)} stored once each, "
              f"{terminal} outcomes counted once; alert {alerts_at_kill} and its "
              f"{len(after)} pending page kept")
    finally:
        serve.kill()
        pager.__exit__(None, None, None)
    assert "Traceback" not in serve.log_text()
