"""End to end: signed webhooks cross a rule; Slack, PagerDuty and email are each told once of
the trigger and once of the resolution, across restarts of the service."""

from __future__ import annotations

import email
import email.policy
import json
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from hookwatch.config import load_config
from tests.conftest import ManualClock, signed_headers
from tests.notifiers.helpers import (
    ROUTING_KEY,
    SLACK_PATH,
    Receiver,
    SmtpRecorder,
    pagerduty_answer,
    smtp_controller,
)

_ids = iter(range(1_000_000))


def post(client: TestClient, clock: ManualClock, status: str) -> None:
    body = {"id": f"p{next(_ids)}", "status": status, "model": "acme/sdxl",
            "deployment": "acme/sdxl-prod", "version": "v1"}
    if status == "failed":
        body["error"] = "CUDA out of memory. Tried to allocate 2.00 GiB"
    raw = json.dumps(body).encode()
    answer = client.post("/hooks/replicate", content=raw,
                         headers=signed_headers(raw, timestamp=clock.now))
    assert answer.status_code == 200, answer.text


def subject(content: bytes | None) -> str:
    assert content is not None
    return str(email.message_from_bytes(content, policy=email.policy.default)["Subject"])


@pytest.fixture
def parts() -> Iterator[tuple[Receiver, Receiver, SmtpRecorder, int]]:
    mail = SmtpRecorder()
    smtp = smtp_controller(mail)
    try:
        with Receiver() as slack, Receiver(answer=pagerduty_answer) as pagerduty:
            yield slack, pagerduty, mail, smtp.port
    finally:
        smtp.stop()


def test_each_channel_is_told_once_of_the_trigger_and_once_of_the_resolution(
    app_factory: Callable[..., FastAPI], clock: ManualClock, tmp_path: Path,
    parts: tuple[Receiver, Receiver, SmtpRecorder, int], monkeypatch: pytest.MonkeyPatch,
) -> None:
    slack, pagerduty, mail, smtp_port = parts
    monkeypatch.setenv("PD_KEY", ROUTING_KEY)
    path = tmp_path / "hookwatch.toml"
    path.write_text(f"""
[notifiers.team]
type = "slack"
webhook_url = "{slack.url}{SLACK_PATH}"

[notifiers.oncall]
type = "pagerduty"
routing_key = "${{PD_KEY}}"
events_url = "{pagerduty.url}/v2/enqueue"

[notifiers.mail]
type = "email"
smtp_host = "127.0.0.1"
smtp_port = {smtp_port}
from = "hookwatch@example.com"
to = ["oncall@example.com"]

[[rules]]
name = "dep-errors"
kind = "error_rate"
scope = "deployment"
window = "10m"
threshold = 0.2
min_predictions = 20
severity = "critical"
notify = ["team", "oncall", "mail"]
""")
    config = load_config(path)

    def told() -> tuple[list[str], list[str], list[str]]:
        return (
            [r.json()["text"].split("]")[0] for r in slack.requests],
            [r.json()["event_action"] for r in pagerduty.requests],
            [subject(m.original_content)[:10] for m in mail.messages],
        )

    with TestClient(app_factory(config=config)) as client:
        for _ in range(15):
            post(client, clock, "succeeded")
        for _ in range(10):
            post(client, clock, "failed")
        client.app.state.jobs.run_now("evaluate")  # type: ignore[attr-defined]
        client.app.state.jobs.run_now("deliver")  # type: ignore[attr-defined]
        assert told() == (["[FIRING · critical"], ["trigger"], ["[hookwatch"])
        trigger = pagerduty.requests[0].json()
        assert trigger["dedup_key"] and trigger["payload"]["group"] == "acme/sdxl-prod"
        assert "40.0%" in trigger["payload"]["summary"]

    with TestClient(app_factory(config=config)) as client:  # a restart changes nothing
        clock.advance(30)
        client.app.state.jobs.run_now("evaluate")  # type: ignore[attr-defined]
        client.app.state.jobs.run_now("deliver")  # type: ignore[attr-defined]
        assert len(slack.requests) + len(pagerduty.requests) + len(mail.messages) == 3
        clock.advance(11 * 60)
        for _ in range(30):
            post(client, clock, "succeeded")
        client.app.state.jobs.run_now("evaluate")  # type: ignore[attr-defined]
        client.app.state.jobs.run_now("deliver")  # type: ignore[attr-defined]
        alerts = client.get("/api/alerts").text

    with TestClient(app_factory(config=config)) as client:
        clock.advance(30)
        client.app.state.jobs.run_now("evaluate")  # type: ignore[attr-defined]
        client.app.state.jobs.run_now("deliver")  # type: ignore[attr-defined]

    assert told() == (["[FIRING · critical", "[RESOLVED"], ["trigger", "resolve"],
                      ["[hookwatch", "Re: [hookw"])  # one subject: clients thread it
    assert pagerduty.requests[1].json()["dedup_key"] == trigger["dedup_key"]
    assert ROUTING_KEY not in alerts and SLACK_PATH not in alerts
