"""PagerDuty Events API v2 through httpx against a local server; bodies checked by JSON Schema."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import jsonschema_rs
import pytest

from hookwatch.notifiers.base import Notifier, NotifyError, SendContext
from hookwatch.notifiers.pagerduty import build_event
from hookwatch.notifiers.registry import build
from tests.notifiers.helpers import ROUTING_KEY, Receiver, alert, notifier_configs, pagerduty_answer

NOW = 1_795_000_100.0

# The Events API v2 "send an alert event" body, written from PagerDuty's reference:
# https://developer.pagerduty.com/docs/events-api-v2/trigger-events/ (fields, required ones,
# 1024-character summary, 255-character dedup_key, the four severities, links and images).
EVENTS_V2_SCHEMA: dict[str, Any] = {
    "$schema": "https://json-schema.org/draft/2020-12/schema",
    "type": "object",
    "required": ["routing_key", "event_action"],
    "additionalProperties": False,
    "properties": {
        "routing_key": {"type": "string", "minLength": 32, "maxLength": 32},
        "event_action": {"enum": ["trigger", "acknowledge", "resolve"]},
        "dedup_key": {"type": "string", "minLength": 1, "maxLength": 255},
        "client": {"type": "string"},
        "client_url": {"type": "string", "format": "uri"},
        "payload": {
            "type": "object",
            "required": ["summary", "source", "severity"],
            "additionalProperties": False,
            "properties": {
                "summary": {"type": "string", "minLength": 1, "maxLength": 1024},
                "source": {"type": "string", "minLength": 1},
                "severity": {"enum": ["critical", "error", "warning", "info"]},
                "timestamp": {"type": "string", "format": "date-time"},
                "component": {"type": "string"},
                "group": {"type": "string"},
                "class": {"type": "string"},
                "custom_details": {"type": "object"},
            },
        },
        "links": {"type": "array", "items": {
            "type": "object", "required": ["href"], "additionalProperties": False,
            "properties": {"href": {"type": "string", "format": "uri"}, "text": {"type": "string"}},
        }},
        "images": {"type": "array", "items": {
            "type": "object", "required": ["src"],
            "properties": {"src": {"type": "string"}, "href": {"type": "string"},
                           "alt": {"type": "string"}},
        }},
    },
    # A trigger needs a payload; acknowledge and resolve need the dedup_key they close.
    "if": {"properties": {"event_action": {"const": "trigger"}}},
    "then": {"required": ["payload"]},
    "else": {"required": ["dedup_key"]},
}
VALIDATOR = jsonschema_rs.validator_for(EVENTS_V2_SCHEMA, validate_formats=True)


def check(event: dict[str, Any]) -> None:
    errors = [e.message for e in VALIDATOR.iter_errors(event)]
    assert errors == [], errors


def test_the_schema_catches_what_pagerduty_refuses() -> None:
    bad = build_event(alert(), routing_key=ROUTING_KEY)
    bad["payload"]["severity"] = "high"
    assert not VALIDATOR.is_valid(bad)
    assert not VALIDATOR.is_valid({"routing_key": ROUTING_KEY, "event_action": "resolve"})
    assert not VALIDATOR.is_valid({"routing_key": ROUTING_KEY, "event_action": "trigger"})


@pytest.fixture
def pagerduty() -> Iterator[Receiver]:
    with Receiver(answer=pagerduty_answer) as server:
        yield server


def notifier(server: Receiver) -> Notifier:
    return build(notifier_configs({"oncall": {
        "type": "pagerduty", "routing_key": ROUTING_KEY,
        "events_url": server.url + "/v2/enqueue"}})["oncall"])


def test_trigger_acknowledge_resolve_share_the_dedup_key(pagerduty: Receiver) -> None:
    sender = notifier(pagerduty)
    for kind in ("trigger", "reminder", "acknowledge", "resolve"):
        result = sender.send(alert(kind, acknowledged_by="alice"), SendContext(now=NOW))
        assert result is not None and result.http_status == 202
    bodies = [r.json() for r in pagerduty.requests]
    for body in bodies:
        check(body)
    assert [b["event_action"] for b in bodies] == ["trigger", "trigger", "acknowledge", "resolve"]
    assert {b["dedup_key"] for b in bodies} == {"deployment-error-rate:deployment:acme/sdxl"}
    trigger = bodies[0]
    assert trigger["payload"]["severity"] == "critical"
    assert trigger["payload"]["group"] == "acme/sdxl"
    assert trigger["payload"]["source"] == "acme/sdxl"
    assert trigger["payload"]["custom_details"]["counts"]["failed"] == 42
    assert trigger["payload"]["custom_details"]["top_errors"][0].startswith("30x CUDA out of")
    assert trigger["links"] == [{"href": "https://hooks.example.com/alerts/7",
                                 "text": "Open in hookwatch"}]
    assert pagerduty.requests[0].path == "/v2/enqueue"


def test_model_scope_is_the_component_and_test_opens_then_closes(pagerduty: Receiver) -> None:
    sender = notifier(pagerduty)
    sender.send(alert("test", scope="model", scope_name="acme/flux", severity="info"),
                SendContext(now=NOW))
    first, second = (r.json() for r in pagerduty.requests)
    check(first)
    check(second)
    assert first["payload"]["component"] == "acme/flux" and "group" not in first["payload"]
    assert (first["event_action"], second["event_action"]) == ("trigger", "resolve")


@pytest.mark.parametrize(
    ("status", "headers", "retryable", "retry_after"),
    [(400, {}, False, None), (403, {}, False, None), (429, {"Retry-After": "12"}, True, 12),
     (500, {}, True, None), (503, {}, True, None)],
)
def test_status_codes(pagerduty: Receiver, status: int, headers: dict[str, str],
                      retryable: bool, retry_after: float | None) -> None:
    pagerduty.fail(1, status, headers,
                   b'{"status":"invalid event","message":"Event object is invalid"}')
    with pytest.raises(NotifyError) as info:
        notifier(pagerduty).send(alert(), SendContext(now=NOW))
    assert (info.value.retryable, info.value.retry_after) == (retryable, retry_after)
    assert info.value.http_status == status
    assert info.value.detail.startswith(f"PagerDuty answered HTTP {status}: ")
    assert ROUTING_KEY not in info.value.detail
