"""Alerts through the real app: webhooks in, outbox rows out; restart, nudge and the API."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from sqlalchemy import update
from sqlmodel import Session, col, select

from hookwatch.app import create_app
from hookwatch.config import Config, load_config
from hookwatch.storage.tables import Alert, DeliveryAttempt, EvaluatorLock, Notification
from tests.alerts.helpers import RATE_RULE, config_text
from tests.conftest import ManualClock, make_settings, signed_headers

App = Callable[..., FastAPI]
_n = iter(range(1_000_000))


@pytest.fixture
def config(tmp_path: Path) -> Config:
    path = tmp_path / "hookwatch.toml"
    path.write_text(config_text(RATE_RULE))
    return load_config(path)


def post(client: TestClient, clock: ManualClock, status: str, **fields: Any) -> None:
    body = {"id": f"p{next(_n)}", "status": status, "model": "acme/sdxl",
            "deployment": "acme/sdxl-prod", "version": "v1", **fields}
    if status == "failed":
        body.setdefault("error", "CUDA out of memory. Tried to allocate 2.00 GiB")
    raw = json.dumps(body).encode()
    response = client.post("/hooks/replicate", content=raw,
                           headers=signed_headers(raw, timestamp=clock.now))
    assert response.status_code == 200, response.text


def traffic(client: TestClient, clock: ManualClock, *, failed: int, succeeded: int) -> None:
    for _ in range(succeeded):
        post(client, clock, "succeeded")
    for _ in range(failed):
        post(client, clock, "failed")


def outbox(client: TestClient) -> list[tuple[str, str, str]]:
    with Session(client.app.state.runtime.engine) as session:  # type: ignore[attr-defined]
        rows = session.exec(select(Notification).order_by(col(Notification.id)))
        return [(n.kind, n.notifier, n.state) for n in rows]


def delivered(client: TestClient) -> None:
    """As if the delivery worker had sent every waiting row (a group folds later changes into
    a row that still waits, so a reminder needs its trigger gone)."""
    with Session(client.app.state.runtime.engine) as session:  # type: ignore[attr-defined]
        session.exec(update(Notification).where(col(Notification.state) == "pending")  # type: ignore[call-overload]
                     .values(state="sent"))
        session.commit()


def evaluate(client: TestClient) -> None:
    client.app.state.jobs.run_now("evaluate")  # type: ignore[attr-defined]


def test_restart_while_firing_sends_nothing_twice_and_forgets_nothing(
    app_factory: App, config: Config, clock: ManualClock
) -> None:
    first, second = app_factory(config=config), app_factory(config=config)
    with TestClient(first) as one, TestClient(second) as two:  # two instances, one file
        traffic(one, clock, failed=10, succeeded=15)
        evaluate(one)
        evaluate(two)
        assert outbox(one) == [("trigger", "team", "pending"), ("trigger", "pager", "pending")]
    # both stopped; a third instance picks up where they left off
    with TestClient(app_factory(config=config)) as three:
        clock.advance(15)
        evaluate(three)
        assert len(outbox(three)) == 2
        delivered(three)
        alert = three.get("/api/alerts").json()["alerts"][0]
        assert (alert["state"], alert["fired_at"]) == ("firing", alert["since"])
        clock.advance(3600)
        traffic(three, clock, failed=10, succeeded=15)
        evaluate(three)
        evaluate(three)
        assert [k for k, _, _ in outbox(three)][2:] == ["reminder", "reminder"]
        ack = three.post(f"/api/alerts/{alert['id']}/ack", json={"by": "ana", "comment": "on it"})
        assert ack.status_code == 200, ack.text
    with TestClient(app_factory(config=config)) as four:
        clock.advance(3600)
        traffic(four, clock, failed=10, succeeded=15)
        evaluate(four)
        assert [k for k, _, _ in outbox(four)][4:] == ["acknowledge", "acknowledge"]  # no reminder
        delivered(four)
        clock.advance(11 * 60)
        traffic(four, clock, failed=0, succeeded=25)
        evaluate(four)
        evaluate(four)
        assert [k for k, _, _ in outbox(four)][6:] == ["resolve", "resolve"]


def test_a_committed_failure_nudges_the_evaluation(
    app_factory: App, config: Config, clock: ManualClock
) -> None:
    with TestClient(app_factory(config=config)) as client:
        runtime = client.app.state.runtime  # type: ignore[attr-defined]
        nudge = runtime.nudges.evaluate
        nudge.start()  # as the scheduler starts it (on the leader); this app runs no jobs
        try:
            traffic(client, clock, failed=0, succeeded=15)
            assert nudge.wait_idle(10)
            with Session(runtime.engine) as session:
                assert session.get(EvaluatorLock, 1) is None  # successes do not nudge
            traffic(client, clock, failed=10, succeeded=0)  # the 25th prediction crosses
            assert nudge.wait_idle(10)
            assert [k for k, _, _ in outbox(client)] == ["trigger", "trigger"]
        finally:
            nudge.stop()
        assert not nudge.running


def test_the_scheduler_starts_and_stops_the_nudges(sqlite_url: str, clock: ManualClock,
                                                   config: Config) -> None:
    app = create_app(make_settings(sqlite_url), clock=clock, config=config, run_jobs=True)
    runtime = app.state.runtime
    assert not runtime.nudges.evaluate.running
    with TestClient(app):
        assert runtime.nudges.evaluate.running and runtime.nudges.deliver.running
        job = app.state.jobs.scheduler.get_job("evaluate")
        assert job.trigger.interval.total_seconds() == runtime.settings.evaluate_interval == 15
    assert not runtime.nudges.evaluate.running and not runtime.nudges.deliver.running


def firing(client: TestClient, clock: ManualClock) -> dict[str, Any]:
    traffic(client, clock, failed=10, succeeded=15)
    evaluate(client)
    alerts = client.get("/api/alerts").json()["alerts"]
    assert len(alerts) == 1
    return alerts[0]


def test_alerts_api_shows_deliveries(app_factory: App, config: Config,
                                     clock: ManualClock) -> None:
    with TestClient(app_factory(config=config)) as client:
        assert client.get("/api/alerts").json() == {"alerts": []}
        alert = firing(client, clock)
        assert (alert["rule"], alert["kind"], alert["scope"], alert["name"]) == (
            "dep-errors", "error_rate", "deployment", "acme/sdxl-prod")
        assert alert["counts"]["failed"] == 10 and alert["value"] == pytest.approx(0.4)
        engine = client.app.state.runtime.engine  # type: ignore[attr-defined]
        with Session(engine) as session:  # what the delivery worker records
            note = session.exec(select(Notification).where(Notification.notifier == "team")).one()
            note.attempts, note.last_error = 1, "HTTP 503 from the receiver"
            session.add(DeliveryAttempt(notification_id=note.id or 0, at=clock.now,
                                        outcome="retry", http_status=503,
                                        error="HTTP 503 from the receiver", duration_ms=12.5))
            session.add(note)
            session.commit()
        alert = client.get("/api/alerts").json()["alerts"][0]
        by_notifier = {n["notifier"]: n for n in alert["notifications"]}
        assert by_notifier["pager"]["attempts"] == 0
        team = by_notifier["team"]
        assert (team["kind"], team["state"], team["attempts"], team["last_error"]) == (
            "trigger", "pending", 1, "HTTP 503 from the receiver")
        assert team["delivery_attempts"][0]["http_status"] == 503
        detail = client.get(f"/api/alerts/{alert['id']}").json()
        assert [(t["from_state"], t["to_state"]) for t in detail["transitions"]] == [
            ("inactive", "firing")]
        missing = client.get("/api/alerts/999")
        assert missing.status_code == 404
        assert missing.json() == {"error": "not_found", "detail": "there is no alert 999"}


def test_acknowledge(app_factory: App, config: Config, clock: ManualClock) -> None:
    with TestClient(app_factory(config=config)) as client:
        alert = firing(client, clock)
        url = f"/api/alerts/{alert['id']}/ack"
        bad = client.post(url, json={"comment": "no name"})
        assert bad.status_code == 422 and bad.json()["error"] == "invalid_request"
        assert "by" in bad.json()["detail"]
        assert client.post(url, json={"by": "ana", "colour": 1}).status_code == 422
        assert client.post("/api/alerts/999/ack", json={"by": "ana"}).json()["error"] == \
            "not_found"
        done = client.post(url, json={"by": "ana", "comment": "rolling back"})
        assert done.status_code == 200
        body = done.json()
        assert (body["acked_by"], body["ack_comment"]) == ("ana", "rolling back")
        assert [n["kind"] for n in body["notifications"]].count("acknowledge") == 2
        again = client.post(url, json={"by": "bob"})
        assert again.status_code == 409 and again.json()["error"] == "already_acknowledged"
        clock.advance(11 * 60)
        traffic(client, clock, failed=0, succeeded=25)
        evaluate(client)
        with Session(client.app.state.runtime.engine) as session:  # type: ignore[attr-defined]
            assert session.exec(select(Alert)).one().state == "resolved"
        resolved = client.post(url, json={"by": "ana"})
        assert resolved.status_code == 409 and resolved.json() == {
            "error": "not_firing",
            "detail": f"alert {alert['id']} is resolved; only a firing alert can be "
                      "acknowledged"}


def test_silences_api(app_factory: App, config: Config, clock: ManualClock) -> None:
    with TestClient(app_factory(config=config)) as client:
        base = {"created_by": "ana", "comment": "deploying v2"}
        cases = [
            ({**base, "duration": "10x"}, "bad duration '10x'"),
            ({**base, "duration": "1h", "ends_at": clock.now + 60}, "exactly one of"),
            ({**base}, "exactly one of"),
            ({**base, "scope": "region", "duration": "1h"}, "scope must be"),
            ({**base, "ends_at": clock.now - 60}, "in the future"),
            ({**base, "ends_at": "2026-05-01 12:00"}, "needs a time zone"),
            ({**base, "ends_at": "soon"}, "ISO 8601"),
            ({**base, "duration": "100d"}, "at most 90 days"),
        ]
        for body, detail in cases:
            response = client.post("/api/silences", json=body)
            assert response.status_code == 422, body
            assert response.json()["error"] == "invalid_silence" and detail in \
                response.json()["detail"], response.json()
        missing = client.post("/api/silences", json={"duration": "1h"})
        assert missing.status_code == 422 and missing.json()["error"] == "invalid_request"

        created = client.post("/api/silences", json={**base, "rule": "dep-*",
                                                      "name": "acme/*", "duration": "2h"})
        assert created.status_code == 201, created.text
        silence = created.json()
        assert (silence["state"], silence["rule"], silence["scope"]) == ("active", "dep-*", "*")
        traffic(client, clock, failed=10, succeeded=15)
        evaluate(client)
        assert outbox(client) == [("trigger", "team", "suppressed"),
                                  ("trigger", "pager", "suppressed")]
        alert = client.get("/api/alerts").json()["alerts"][0]
        assert alert["muted_by"] == f"silence {silence['id']}"

        clock.advance(60)
        ended = client.delete(f"/api/silences/{silence['id']}?by=bob")
        assert ended.status_code == 200
        assert (ended.json()["state"], ended.json()["expired_by"]) == ("expired", "bob")
        assert client.delete(f"/api/silences/{silence['id']}").json()["error"] == \
            "already_expired"
        assert client.delete("/api/silences/999").status_code == 404
        listed = client.get("/api/silences").json()["silences"]
        assert [s["id"] for s in listed] == [silence["id"]]  # kept for history
        assert client.get("/api/silences?expired=false").json() == {"silences": []}
        evaluate(client)  # the silence is over: the held-back trigger goes out
        assert outbox(client)[2:] == [("trigger", "team", "pending"),
                                      ("trigger", "pager", "pending")]
