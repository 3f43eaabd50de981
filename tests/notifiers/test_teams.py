"""Teams through httpx against a local server standing in for a Workflows webhook; every card is
checked against a JSON Schema of the Adaptive Card subset we send (jsonschema-rs)."""

from __future__ import annotations

import functools
import json
import logging
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import jsonschema_rs
import orjson
import pytest
from sqlalchemy import Engine
from sqlmodel import Session, col, select

from hookwatch.notifiers.base import Notifier, NotifyError, SendContext
from hookwatch.notifiers.registry import build
from hookwatch.notifiers.teams import BODY_MAX_BYTES, build_body
from hookwatch.storage.tables import Notification
from tests.conftest import ManualClock
from tests.notifiers.helpers import (
    TEAMS_PATH,
    TEAMS_SIG,
    Answer,
    Receiver,
    Request,
    alert,
    config_problems,
    enqueue,
    huge_alert,
    make_worker,
    notifier_configs,
)

NOW = 1_795_000_100.0
SCHEMA = Path(__file__).with_name("teams_card.schema.json")


def accepted(_request: Request) -> Answer:
    return 202, {}, b""  # Workflows answer 202 and run the flow afterwards


@pytest.fixture
def teams() -> Iterator[Receiver]:
    with Receiver(answer=accepted) as server:
        yield server


@functools.cache
def validator() -> Any:
    return jsonschema_rs.validator_for(json.loads(SCHEMA.read_text()))


def assert_card(body: dict[str, Any]) -> dict[str, Any]:
    errors = [f"{e.instance_path}: {e.message}" for e in validator().iter_errors(body)]
    assert errors == []
    assert len(orjson.dumps(body)) <= BODY_MAX_BYTES
    card: dict[str, Any] = body["attachments"][0]["content"]
    return card


def facts(card: dict[str, Any], index: int) -> dict[str, str]:
    return {f["title"]: f["value"] for f in card["body"][index]["facts"]}


def notifier(server: Receiver) -> Notifier:
    return build(notifier_configs({"room": {"type": "teams",
                                            "webhook_url": server.url + TEAMS_PATH}})["room"])


def test_the_schema_refuses_what_teams_would() -> None:
    """The control: the schema is strict enough to catch the mistakes that matter."""
    good = build_body(alert())
    assert_card(good)
    wrong = [
        {**good, "attachments": [{**good["attachments"][0], "contentType": "application/json"}]},
        {"@type": "MessageCard", "text": "the retired connector format"},
        {**good, "attachments": [{**good["attachments"][0], "content": {
            **good["attachments"][0]["content"], "actions": [{"type": "Action.OpenUrl"}]}}]},
        {**good, "attachments": [{**good["attachments"][0], "content": {
            **good["attachments"][0]["content"], "body": [{"type": "FactSet", "facts": []}]}}]},
    ]
    for body in wrong:
        assert not validator().is_valid(body)


def test_trigger_is_an_adaptive_card(teams: Receiver, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    caplog.set_level(logging.INFO, logger="httpx")  # `hookwatch` commands quieten it
    result = notifier(teams).send(alert(), SendContext(now=NOW, notification_id=1))
    assert result is not None and result.http_status == 202
    (request,) = teams.requests
    assert request.path == TEAMS_PATH
    assert request.headers["content-type"] == "application/json"
    card = assert_card(request.json())
    assert request.json()["attachments"][0]["contentType"] == (
        "application/vnd.microsoft.card.adaptive")
    heading = card["body"][0]
    assert heading["text"].startswith("[FIRING · critical] deployment acme/sdxl")
    assert (heading["color"], heading["style"]) == ("Attention", "heading")
    assert card["body"][1]["text"] == "acme/sdxl: 35.0% of predictions failed in the last 10m"
    assert facts(card, 2) == {
        "Measured": "error rate 35.0% (threshold 20.0%) over 10m",
        "Predictions": "121 predictions: 78 succeeded, 42 failed, 1 canceled, 0 aborted",
        "Severity": "critical",
        "Scope": "deployment acme/sdxl",
        "Rule": "deployment-error-rate (error_rate)",
        "Started": "2026-11-18 11:06:40 UTC",
    }
    assert card["body"][3]["text"] == "Top errors"
    assert facts(card, 4) == {
        "30\u00d7": "CUDA out of memory. Tried to allocate 2.00 GiB (a1b2c3d4e5f6)",
        "12\u00d7": "ValueError: <prompt> & 'seed' must be set (0f0e0d0c0b0a)",
    }
    assert card["actions"] == [{"type": "Action.OpenUrl", "title": "Open in hookwatch",
                                "url": "https://hooks.example.com/alerts/7"}]
    assert TEAMS_SIG not in caplog.text and any(r.name == "httpx" for r in caplog.records)


def test_resolution_is_a_green_card_of_its_own(teams: Receiver) -> None:
    notifier(teams).send(alert("resolve", resolved_at=NOW),
                         SendContext(now=NOW, thread_ref="ignored"))
    card = assert_card(teams.requests[0].json())
    assert card["body"][0]["color"] == "Good"
    assert card["body"][0]["text"].startswith("[RESOLVED]")
    assert facts(card, 2)["Resolved"] == "2026-11-18 11:08:20 UTC (firing for 1m40s)"
    assert "Top errors" not in json.dumps(card)


def test_huge_message_stays_under_the_size_limit() -> None:
    for kind in ("trigger", "acknowledge", "resolve", "reminder", "test"):
        card = assert_card(build_body(huge_alert(kind, acknowledge_comment="c" * 90_000)))
        if kind != "resolve":
            shown = len(card["body"][4]["facts"])
            assert 5 <= shown < 200
            assert card["body"][5]["text"] == f"… and {200 - shown} more"
    # Even with nothing else to cut, a scope name of 90,000 characters fits.
    assert_card(build_body(huge_alert(scope_name="x" * 90_000, rule="r" * 90_000)))


def test_429_and_5xx_are_temporary_4xx_permanent(teams: Receiver) -> None:
    sender = notifier(teams)
    teams.fail(1, 429, {"Retry-After": "25"}, b'{"error":{"code":"WorkflowTriggerIsThrottled"}}')
    teams.fail(1, 503, body=b"Service Unavailable")
    teams.fail(1, 400, body=b'{"error":{"code":"TriggerInputSchemaMismatch"}}')
    teams.fail(1, 401, body=b'{"error":{"code":"DirectApiAuthorizationRequired"}}')
    expected = [(True, 25, 429), (True, None, 503), (False, None, 400), (False, None, 401)]
    for retryable, retry_after, status in expected:
        with pytest.raises(NotifyError) as info:
            sender.send(alert(), SendContext(now=NOW))
        assert (info.value.retryable, info.value.retry_after, info.value.http_status) == (
            retryable, retry_after, status)
        assert TEAMS_SIG not in info.value.detail


def test_config_problems() -> None:
    problems = config_problems({
        "a": {"type": "teams", "webhook_url": f"not a url?sig={TEAMS_SIG}"},
        "b": {"type": "teams", "webhook_url": "https://x.example/", "colour": 1},
    })
    assert len(problems) == 2 and not any(TEAMS_SIG in p for p in problems)
    assert problems[0] == (
        "notifiers.a.webhook_url: must be an https:// URL (a Teams Workflows webhook)")
    assert problems[1].startswith("notifiers.b.colour: unknown key (expected one of ")


def test_through_the_worker_after_a_429(sqlite_engine: Engine, teams: Receiver,
                                        clock: ManualClock) -> None:
    configs = notifier_configs({"room": {"type": "teams", "webhook_url": teams.url + TEAMS_PATH}})
    worker = make_worker(sqlite_engine, configs)
    enqueue(sqlite_engine, alert(), notifier="room", now=clock.now)
    teams.fail(1, 429, {"Retry-After": "30"})
    worker.deliver(clock.now)
    assert worker.deliver(clock.now + 29).sent == 0
    assert worker.deliver(clock.now + 30).sent == 1
    with Session(sqlite_engine) as session:
        (row,) = session.exec(select(Notification).order_by(col(Notification.id)))
    assert (row.state, row.attempts) == ("sent", 2)
    assert len(teams.requests) == 2
