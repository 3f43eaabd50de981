"""A failure burst ingested by a follower replica alerts within a second or so: its writer's
NOTIFY wakes the leader's evaluation, long before the leader's next scheduled one."""

from __future__ import annotations

import json
import time
from pathlib import Path

import httpx
import pytest
from sqlalchemy import Engine, text

from tests.conftest import signed_headers
from tests.notifiers.helpers import HOOK_SECRET, Receiver
from tests.scaleout.replicas import Replica, until

pytestmark = [pytest.mark.postgres, pytest.mark.slow]

FAILED, SUCCEEDED = 8, 4  # 67 % failed, over the 20 % threshold once 10 are counted


def outbox_rows(engine: Engine) -> int:
    with engine.connect() as conn:
        return int(conn.execute(text("SELECT count(*) FROM notifications")).scalar_one())


def test_a_failure_burst_on_the_follower_alerts_through_the_leader_at_once(
    postgres_url: str, pg_engine: Engine, tmp_path: Path
) -> None:
    with Receiver() as hook:
        config = tmp_path / "hookwatch.toml"
        config.write_text(f"""
[notifiers.hook]
type = "webhook"
url = "{hook.url}/alerts"
secret = "{HOOK_SECRET}"

[[rules]]
name = "acme-errors"
kind = "error_rate"
scope = "model"
match = "acme/*"
window = "5m"
threshold = 0.2
min_predictions = 10
for = "0s"
severity = "critical"
notify = ["hook"]
""")
        # The scheduled evaluation is 10 minutes away: only the nudge can explain an alert
        # within 30 s (the wait is generous so a loaded machine does not fail it; the latency
        # itself is a figure, printed below and measured by bench/bench_alert_latency.py).
        env = {"HOOKWATCH_EVALUATE_INTERVAL": "600"}
        a = Replica("leader", database_url=postgres_url, config=config, logs=tmp_path, env=env)
        b = Replica("follower", database_url=postgres_url, config=config, logs=tmp_path, env=env)
        try:
            a.start()
            a.wait_role("leader")
            b.start()
            b.wait_role("follower")

            now = time.time()
            with httpx.Client(timeout=10) as client:
                for i in range(FAILED + SUCCEEDED):
                    failed = i < FAILED
                    body = json.dumps({
                        "id": f"burst-{i:03d}", "model": "acme/sdxl", "version": "v1",
                        "status": "failed" if failed else "succeeded",
                        "error": "CUDA out of memory" if failed else None,
                        "metrics": {"predict_time": 1.0},
                    }).encode()
                    answer = client.post(b.url + "/hooks/replicate", content=body,
                                         headers=signed_headers(body, timestamp=now))
                    assert answer.status_code == 200, answer.text
            sent = time.monotonic()
            try:
                until(lambda: outbox_rows(pg_engine) > 0, timeout=30.0,
                      what="the alert's outbox row")
            except AssertionError:
                raise AssertionError(f"no alert within 30 s:\n{a.output()}") from None
            latency = time.monotonic() - sent
            print(f"\nfollower burst -> leader's outbox row: {latency * 1000:.0f} ms")
            with pg_engine.connect() as conn:
                assert conn.execute(text("SELECT state FROM alerts")).all() == [("firing",)]
                assert conn.execute(text("SELECT notifier, kind FROM notifications")).all() \
                    == [("hook", "trigger")]
            assert a.role() == "leader" and b.role() == "follower"
        finally:
            b.stop()
            a.stop()
