"""/api/status, badges and /metrics, on SQLite and PostgreSQL."""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from collections.abc import Callable

from fastapi import FastAPI
from fastapi.testclient import TestClient

from tests.conftest import ManualClock
from tests.dashboard import helpers

SVG = "{http://www.w3.org/2000/svg}"


def _traffic(client: TestClient, clock: ManualClock) -> None:
    """llama: 3 ok, then 50 minutes later sdxl-prod: 6 of 8 failed and llama 1 canceled."""
    for _ in range(3):
        helpers.send(client, clock, helpers.body(
            "succeeded", at=clock.now, model="acme/llama", deployment=None, version="v2"))
    clock.advance(3000 - 240)
    for i in range(8):
        clock.advance(20)
        failed = i < 6
        helpers.send(client, clock, helpers.body(
            "failed" if failed else "succeeded", at=clock.now,
            error="CUDA out of memory" if failed else None))
    helpers.send(client, clock, helpers.body(
        "canceled", at=clock.now, model="acme/llama", deployment=None, version="v2"))


def test_status_json_gives_counts_rates_and_open_alerts(
    dash_app: Callable[..., FastAPI], clock: ManualClock, db_url: str
) -> None:
    app = dash_app(db_url)
    with TestClient(app) as client:
        _traffic(client, clock)
        app.state.jobs.run_now("evaluate")
        answer = client.get("/api/status")
        assert answer.status_code == 200
        status = answer.json()
        by_key = {(s["scope"], s["name"]): s for s in status["scopes"]}
        assert set(by_key) == {
            ("model", "acme/sdxl"), ("deployment", "acme/sdxl-prod"),
            ("version", "acme/sdxl:5c7d5dc6dd8bf75c1acaa8565735e7986bc5b66206b55cca93cb72c9bf15ccaa"),
            ("model", "acme/llama"), ("version", "acme/llama:v2"),
        }
        prod = by_key[("deployment", "acme/sdxl-prod")]
        assert prod["status"] == "firing"
        assert prod["windows"]["5m"] == {"succeeded": 2, "failed": 6, "canceled": 0,
                                         "aborted": 0, "other": 0, "total": 8,
                                         "error_rate": 0.75}
        assert prod["windows"]["1h"]["error_rate"] == 0.75
        llama = by_key[("model", "acme/llama")]
        assert llama["status"] == "ok"
        assert llama["windows"]["5m"]["canceled"] == 1
        assert llama["windows"]["5m"]["error_rate"] is None  # canceled is not an error
        assert llama["windows"]["1h"]["succeeded"] == 3
        # No rule watches versions (the test rules are deployment and model ones): not "ok".
        assert by_key[("version", "acme/llama:v2")]["status"] == "unwatched"
        assert {s["status"] for s in status["scopes"] if s["scope"] == "version"} == {"unwatched"}
        assert status["status"] == "firing" and status["firing"] == 1
        assert [(a["scope"], a["state"]) for a in status["alerts"]] == [
            ("deployment", "firing"), ("model", "pending")]  # the model rule waits 5 minutes
        assert by_key[("model", "acme/sdxl")]["status"] == "pending"
        alert = status["alerts"][0]
        assert (alert["rule"], alert["state"], alert["severity"]) == (
            "deployment-error-rate", "firing", "critical")
        assert alert["value"] == 0.75
        assert alert["fired_at"] is not None and alert["acknowledged_at"] is None
        assert status["alerts"][1]["fired_at"] is None  # pending: JSON null, not ""
        deployments = client.get("/api/status", params={"kind": "deployment"}).json()
        assert [s["name"] for s in deployments["scopes"]] == ["acme/sdxl-prod"]
        assert client.get("/api/status", params={"q": "LLAMA"}).json()["scopes"][0]["name"] == (
            "acme/llama")


def _badge(client: TestClient, path: str) -> tuple[str, str]:
    answer = client.get(path)
    assert answer.status_code == 200, answer.text
    assert answer.headers["content-type"] == "image/svg+xml"
    root = ET.fromstring(answer.text)
    label, message = [t.text or "" for t in root.iter(f"{SVG}text")][1::2]
    colour = root.findall(f"{SVG}g/{SVG}rect")[1].get("fill") or ""
    return f"{label} | {message}", colour


def test_badges_show_the_hour_error_rate_coloured_by_status(
    dash_app: Callable[..., FastAPI], clock: ManualClock
) -> None:
    app = dash_app()
    with TestClient(app) as client:
        assert _badge(client, "/badge/deployment/acme/sdxl-prod.svg") == (
            "acme/sdxl-prod | no data", "#9f9f9f")
        _traffic(client, clock)
        assert _badge(client, "/badge/deployment/acme/sdxl-prod.svg") == (
            "acme/sdxl-prod | 75% errors", "#2e9e44")  # no rule has looked yet: ok
        app.state.jobs.run_now("evaluate")
        assert _badge(client, "/badge/deployment/acme/sdxl-prod.svg") == (
            "acme/sdxl-prod | 75% errors", "#d9352b")
        assert _badge(client, "/badge/model/acme/llama.svg") == (
            "acme/llama | 0% errors", "#2e9e44")
        assert _badge(client, "/badge/version/acme/llama:v2.svg") == (
            "acme/llama:v2 | 0% errors", "#9f9f9f")  # grey: no rule watches versions
        missing = client.get("/badge/region/eu.svg")
        assert missing.status_code == 404 and missing.json()["error"] == "not_found"


def test_metrics_expose_webhooks_predictions_alerts_and_notification_attempts(
    dash_app: Callable[..., FastAPI], clock: ManualClock
) -> None:
    app = dash_app()
    with TestClient(app) as client:
        _traffic(client, clock)
        client.post("/hooks/replicate", content=b"{}")  # refused: no signature
        app.state.jobs.run_now("evaluate")
        app.state.jobs.run_now("deliver")
        text = client.get("/metrics").text
        clock.advance(2 * 86400)  # today's buckets are closed days now: the same totals
        later = client.get("/metrics").text
    totals = [line for line in text.splitlines() if line.startswith("hookwatch_predictions_total")]
    assert len(totals) == 10 and totals == [  # 5 scopes, 2 outcomes each
        line for line in later.splitlines() if line.startswith("hookwatch_predictions_total")]

    def value(pattern: str) -> float:
        match = re.search("^" + re.escape(pattern).replace(r"\*", ".*") + r" ([0-9.e+]+)$",
                          text, re.M)
        assert match, pattern
        return float(match.group(1))

    assert value('hookwatch_webhooks_received_total{result="recorded"}') == 12
    assert value('hookwatch_webhooks_received_total{result="missing_credentials"}') == 1
    assert value('hookwatch_predictions_total{name="acme/sdxl-prod",outcome="failed",'
                 'scope="deployment"}') == 6
    assert value('hookwatch_predictions_total{name="acme/llama",outcome="canceled",'
                 'scope="model"}') == 1
    assert value('hookwatch_alerts{muted="false",severity="critical",state="firing"}') == 1
    assert value('hookwatch_notification_attempts_total{notifier="team-slack",'
                 'outcome="sent"}') == 1
    assert value('hookwatch_notification_attempts_total{notifier="audit-log",'
                 'outcome="failed"}') == 1
    assert value('hookwatch_notification_attempts_total{notifier="pagerduty",'
                 'outcome="retry"}') == 1
    assert value('hookwatch_predictions_in_flight{status="processing"}') == 0
    assert value("hookwatch_database_up") == 1
