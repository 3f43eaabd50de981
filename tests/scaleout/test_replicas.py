"""Two `hookwatch serve` replicas on one PostgreSQL: webhooks spread over both, one alert,
one notification per channel; the leader is SIGKILLed and the other delivers, once."""

from __future__ import annotations

import json
import time
from datetime import UTC, datetime
from pathlib import Path

import httpx
import pytest
from sqlalchemy import Engine, text

from tests.conftest import signed_headers
from tests.notifiers.helpers import HOOK_SECRET, SLACK_TOKEN, Receiver, slack_api_answer
from tests.scaleout.replicas import Replica, until

pytestmark = [pytest.mark.postgres, pytest.mark.slow]

PREDICTIONS = 30
FAILED = 12  # 40 % > the 20 % threshold


def config_file(path: Path, hook: Receiver, slack: Receiver) -> Path:
    path.write_text(f"""
[notifiers.hook]
type = "webhook"
url = "{hook.url}/alerts"
secret = "{HOOK_SECRET}"

[notifiers.team]
type = "slack"
token = "{SLACK_TOKEN}"
channel = "C0TEST"
api_url = "{slack.url}/api/"

[[rules]]
name = "acme-errors"
kind = "error_rate"
scope = "model"
match = "acme/*"
window = "5m"
threshold = 0.2
min_predictions = 10
for = "0s"
keep_firing_for = "5m"
severity = "critical"
notify = ["hook", "team"]
repeat_interval = "4h"
""")
    return path


def rows(engine: Engine, sql: str) -> list[tuple[object, ...]]:
    with engine.connect() as conn:
        return [tuple(r) for r in conn.execute(text(sql))]


def send_lifecycles(replicas: list[Replica]) -> None:
    """Each prediction's start goes to one replica and its outcome to the other."""
    now = time.time()
    created = datetime.fromtimestamp(now - 5, UTC).isoformat().replace("+00:00", "Z")
    with httpx.Client(timeout=10) as client:
        for i in range(PREDICTIONS):
            failed = i < FAILED
            base = {"id": f"pred-{i:03d}", "model": "acme/sdxl", "version": "v1",
                    "created_at": created}
            start = {**base, "status": "starting"}
            end = {**base, "status": "failed" if failed else "succeeded",
                   "error": "CUDA out of memory" if failed else None,
                   "metrics": {"predict_time": 1.5}}
            for j, doc in enumerate((start, end)):
                body = json.dumps(doc).encode()
                target = replicas[(i + j) % 2]
                answer = client.post(target.url + "/hooks/replicate", content=body,
                                     headers=signed_headers(body, timestamp=now))
                assert answer.status_code == 200, answer.text


def test_two_replicas_one_alert_one_notification_per_channel(
    postgres_url: str, pg_engine: Engine, tmp_path: Path
) -> None:
    with Receiver() as hook, Receiver(answer=slack_api_answer) as slack:
        config = config_file(tmp_path / "hookwatch.toml", hook, slack)
        fast = {"HOOKWATCH_EVALUATE_INTERVAL": "1"}
        # Both channels are down when the alert fires: the first leader's prompt attempt fails
        # and its scheduled retry is far off, so the rows are still pending when it dies.
        hook.fail(1, 503)
        slack.fail(1, 503)
        a = Replica("a", database_url=postgres_url, config=config, logs=tmp_path,
                    env={**fast, "HOOKWATCH_DELIVER_INTERVAL": "3600"})
        b = Replica("b", database_url=postgres_url, config=config, logs=tmp_path,
                    env={**fast, "HOOKWATCH_DELIVER_INTERVAL": "1"})
        try:
            a.start()
            a.wait_role("leader")
            b.start()
            b.wait_role("follower")
            leadership = b.readyz()["checks"]["leadership"]  # type: ignore[index]
            assert leadership["leader"] == a.readyz()["checks"]["leadership"]["replica"]  # type: ignore[index]

            send_lifecycles([a, b])
            assert rows(pg_engine, "SELECT count(*) FROM events") == [(2 * PREDICTIONS,)]
            # Summed: the lifecycles may straddle a minute boundary.
            assert rows(pg_engine, "SELECT sum(failed), sum(succeeded) FROM outcome_buckets "
                                  "WHERE resolution = 60 AND scope = 'model'") \
                == [(FAILED, PREDICTIONS - FAILED)]

            pending = ("SELECT notifier, kind, state, attempts FROM notifications "
                       "ORDER BY notifier")
            until(lambda: [r[3] for r in rows(pg_engine, pending)] == [1, 1],
                  what="two outbox rows, each tried once")
            assert rows(pg_engine, pending) == [("hook", "trigger", "pending", 1),
                                               ("team", "trigger", "pending", 1)]
            assert rows(pg_engine, "SELECT state FROM alerts") == [("firing",)]
            assert len(hook.requests) == 1 and len(slack.requests) == 1  # the refused tries

            a.kill()
            killed = time.monotonic()
            until(lambda: len(hook.requests) == 2 and len(slack.requests) == 2, timeout=25,
                  what="delivery by the new leader")
            delivered_after = time.monotonic() - killed
            assert b.role() == "leader"
            assert delivered_after < 15, delivered_after  # the first retry is due within 10 s

            # Several more delivery and evaluation ticks on b: nothing is sent again.
            ticks = time.monotonic() + 3
            until(lambda: time.monotonic() > ticks, what="three more ticks")
            assert len(hook.requests) == 2 and len(slack.requests) == 2
            assert hook.requests[1].json()["type"] == "alert.trigger"
            assert hook.requests[0].headers["webhook-id"] == hook.requests[1].headers["webhook-id"]
            assert slack.requests[1].path == "/api/chat.postMessage"
            assert rows(pg_engine, "SELECT notifier, state, attempts FROM notifications "
                                  "ORDER BY notifier") == [("hook", "sent", 2),
                                                           ("team", "sent", 2)]
            assert rows(pg_engine, "SELECT count(*) FROM delivery_attempts") == [(4,)]
        finally:
            b.stop()
            a.stop()
