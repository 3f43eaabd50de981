"""GET /alerts/{id}: the HTML page notifications link to; HTML 404s for browsers."""

from __future__ import annotations

import re
from collections.abc import Callable

from fastapi import FastAPI
from fastapi.testclient import TestClient
from sqlmodel import Session, select

from hookwatch.storage.tables import Alert
from tests.conftest import ManualClock
from tests.dashboard import helpers

HTML = {"accept": "text/html"}


def _firing(app: FastAPI, client: TestClient, clock: ManualClock) -> Alert:
    """acme/sdxl-prod: 3 successes a minute apart, then the burst (14 webhooks 20 s apart, 10
    failed); evaluated and delivered."""
    for _ in range(3):
        helpers.send(client, clock, helpers.body("succeeded", at=clock.now))
        clock.advance(60)
    helpers.burst(client, clock)
    app.state.jobs.run_now("evaluate")
    app.state.jobs.run_now("deliver")
    with Session(app.state.runtime.engine) as session:
        return session.exec(select(Alert).where(Alert.state == "firing")).one()


def _text(html: str, section: str) -> str:
    found = re.search(rf'<section[^>]*id="{section}".*?</section>', html, re.S)
    assert found is not None, section
    return re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", found.group(0)))


def test_the_alert_page_shows_value_threshold_transitions_fates_and_failing_predictions(
    dash_app: Callable[..., FastAPI], clock: ManualClock
) -> None:
    app = dash_app()
    with TestClient(app) as client:
        alert = _firing(app, client, clock)
        answer = client.get(f"/alerts/{alert.id}", headers=HTML)
        assert answer.status_code == 200
        assert answer.headers["content-type"].startswith("text/html")
        assert "default-src 'self'" in answer.headers["content-security-policy"]
        page = answer.text
        head = _text(page, "alert")
        assert "critical" in head and "firing" in head
        assert "deployment-error-rate on deployment acme/sdxl-prod" in head
        assert "threshold 20%" in head
        chart = re.search(r'<svg class="alert-chart".*?</svg>', page, re.S)
        assert chart is not None
        title = re.search(r"<title>(.*?)</title>", chart.group(0))
        assert title is not None
        assert re.fullmatch(r"error rate over 10 min: peak \d+%, last \d+%, threshold 20%",
                            title.group(1)), title.group(1)
        assert '<path class="value" d="M' in chart.group(0)  # a line was drawn
        assert 'class="threshold"' in chart.group(0) and 'class="mark m-firing"' in chart.group(0)
        fates = dict(re.findall(
            r'<tr data-notifier="([^"]+)" data-kind="trigger">.*?<span class="pill d-(\w+)">',
            page, re.S))
        assert fates == {"team-slack": "sent", "pagerduty": "retrying", "audit-log": "failed"}
        notes = _text(page, "notifications")
        assert "attempt 1 failed; next try" in notes  # pagerduty's 503: when it tries again
        assert "invalid routing key" in notes  # audit-log's 400, as the channel answered
        transitions = _text(page, "transitions")
        assert "pending" in transitions or "inactive" in transitions
        assert "firing" in transitions
        failing = _text(page, "failing")
        assert "CUDA out of memory" in failing and " 10 " in failing
        links = re.findall(r'<a href="/predictions/([^"]+)" class="prediction">', page)
        assert len(links) == 3  # the latest three of the group
        assert client.get(f"/predictions/{links[0]}", headers=HTML).status_code == 200
        assert f'action="/alerts/{alert.id}/ack"' in page
        assert f'<a class="details" href="/alerts/{alert.id}">' in client.get("/").text


def test_acknowledge_and_silence_from_the_alert_page(
    dash_app: Callable[..., FastAPI], clock: ManualClock
) -> None:
    app = dash_app()
    with TestClient(app) as client:
        alert = _firing(app, client, clock)
        path = f"/alerts/{alert.id}"
        form = {"by": "alice", "comment": "rolling back", "page": "alert",
                "csrf": helpers.csrf(client, path)}
        answer = client.post(f"{path}/ack", data=form, follow_redirects=False)
        assert answer.status_code == 303 and answer.headers["location"] == path
        page = client.get(path, headers=HTML).text
        assert "by alice" in _text(page, "alert") and "“rolling back”" in page
        assert f'action="{path}/ack"' not in page  # acknowledged: no second form
        again = client.post(f"{path}/ack", data=form)
        assert again.status_code == 409 and "was acknowledged by alice" in again.text
        assert again.headers["content-type"].startswith("text/html")  # the page, with why
        silence = {"by": "bob", "comment": "deploying a fix", "duration": "4h", "page": "alert",
                   "csrf": form["csrf"]}
        answer = client.post(f"{path}/silence", data=silence, follow_redirects=False)
        assert answer.status_code == 303 and answer.headers["location"] == path
        assert "by bob until" in client.get(path, headers=HTML).text
        forged = client.post(f"{path}/ack", data=form | {"csrf": "0.bad"})
        assert forged.status_code == 403


def test_missing_prediction_and_alert_answer_html_to_browsers_and_json_to_scripts(
    dash_app: Callable[..., FastAPI],
) -> None:
    with TestClient(dash_app()) as client:
        for path, words in (("/predictions/nope", "no prediction with id &#39;nope&#39;"),
                            ("/alerts/999", "there is no alert 999")):
            page = client.get(path, headers={"accept": "text/html,application/xhtml+xml"})
            assert page.status_code == 404
            assert page.headers["content-type"].startswith("text/html")
            assert "<h1>Not found</h1>" in page.text and words in page.text
            plain = client.get(path)
            assert plain.status_code == 404 and plain.json()["error"] == "not_found"
            scripted = client.get(path, headers={"accept": "application/json"})
            assert scripted.json()["error"] == "not_found"


def test_a_notification_written_while_silenced_says_it_was_suppressed_and_why(
    dash_app: Callable[..., FastAPI], clock: ManualClock
) -> None:
    app = dash_app()
    with TestClient(app) as client:
        silence = {"rule": "deployment-error-rate", "name": "acme/*", "duration": "2h",
                   "created_by": "carol", "comment": "maintenance"}
        assert client.post("/api/silences", json=silence).status_code == 201
        alert = _firing(app, client, clock)
        page = client.get(f"/alerts/{alert.id}", headers=HTML).text
        notes = _text(page, "notifications")
        assert notes.count("suppressed: written while the alert was muted") == 3
        assert "by carol until" in _text(page, "alert") and "“maintenance”" in page
