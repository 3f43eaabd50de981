"""Regression and new_error through the real app: signed webhooks in, the scheduler's
evaluate job (with its lineup cache), outbox rows out."""

from __future__ import annotations

import json
from pathlib import Path

from fastapi.testclient import TestClient
from sqlmodel import Session, col, select

from hookwatch.app import create_app
from hookwatch.config import load_config
from hookwatch.notifiers.message import AlertMessage
from hookwatch.storage.tables import Alert, Notification
from hookwatch.storage.versions import LineupCache
from tests.alerts.helpers import config_text
from tests.conftest import ManualClock, make_settings, signed_headers

RULES = """
[[rules]]
name = "version-regression"
kind = "regression"
scope = "model"
notify = ["team"]

[[rules]]
name = "new-errors"
kind = "new_error"
scope = "model"
quiet_for = "7d"
notify = ["team"]
"""
_n = iter(range(1_000_000))


def post(client: TestClient, clock: ManualClock, status: str, version: str,
         error: str | None = None) -> None:
    body = {"id": f"p{next(_n)}", "status": status, "model": "acme/sdxl",
            "deployment": "acme/sdxl-prod", "version": version, "error": error}
    raw = json.dumps(body).encode()
    answer = client.post("/hooks/replicate", content=raw,
                         headers=signed_headers(raw, timestamp=clock.now))
    assert answer.status_code == 200, answer.text


def test_rollout_through_the_app(tmp_path: Path, sqlite_url: str, clock: ManualClock) -> None:
    path = tmp_path / "hookwatch.toml"
    path.write_text(config_text(RULES))
    app = create_app(make_settings(sqlite_url), clock=clock, config=load_config(path),
                     run_jobs=False)
    with TestClient(app) as client:
        for i in range(300):
            post(client, clock, "failed" if i < 3 else "succeeded", "v1",
                 "worker crashed" if i < 3 else None)
        clock.advance(5)
        app.state.jobs.run_now("evaluate")  # learns the fingerprints seen so far, quietly
        clock.advance(7200)
        for i in range(40):
            post(client, clock, "failed" if i < 10 else "succeeded", "v2",
                 "ValueError: size 1025 is not a multiple of 64" if i < 10 else None)
        clock.advance(5)
        app.state.jobs.run_now("evaluate")
        assert isinstance(app.state.runtime.evaluator.lineups, LineupCache)
        with Session(app.state.runtime.engine) as session:
            states = {a.rule: a.state for a in session.exec(select(Alert))}
            messages = [AlertMessage.from_json(json.loads(n.payload)) for n in session.exec(
                select(Notification).order_by(col(Notification.id)))]
        assert states == {"version-regression": "firing", "new-errors": "firing"}
        summaries = sorted(m.summary for m in messages)
        assert len(summaries) == 2
        assert "new error on version v2: ValueError: size <n> is not a multiple of <n>" in \
            summaries[0]
        assert "version v2: 10 of 40 failed (25%) against 3 of 300 (1%) for v1" in summaries[1]
