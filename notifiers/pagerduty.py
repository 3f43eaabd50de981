"""The PagerDuty channel: Events API v2 trigger / acknowledge / resolve, dedup_key = alert key.

https://developer.pagerduty.com/docs/events-api-v2/trigger-events/
"""

from __future__ import annotations

import hashlib
from typing import Annotated, Any, Literal

import httpx
from pydantic import AfterValidator, SecretStr

from hookwatch.notifiers.base import DEFAULT_TIMEOUT, SendContext, SendResult, short
from hookwatch.notifiers.controls import escape_controls
from hookwatch.notifiers.fields import ChannelOptions, OptText, Secret, Timeout, Url, problem
from hookwatch.notifiers.http import make_client, refused
from hookwatch.notifiers.message import AlertMessage
from hookwatch.notifiers.render import context, iso, oneline

DEFAULT_EVENTS_URL = "https://events.pagerduty.com/v2/enqueue"
SUMMARY_MAX = 1024
DEDUP_KEY_MAX = 255
SEVERITIES = ("critical", "error", "warning", "info")
# An update of a group re-triggers its incident (same dedup_key): PagerDuty folds it in.
ACTIONS = {"trigger": "trigger", "update": "trigger", "reminder": "trigger", "test": "trigger",
           "acknowledge": "acknowledge", "resolve": "resolve"}


def _integration_key(value: SecretStr) -> SecretStr:
    if len(value.get_secret_value()) != 32:
        # The integration key is 32 characters; saying its length would not leak it, but
        # quoting it would.
        raise problem("must be the 32-character Events API v2 integration key")
    return value


class PagerDutyOptions(ChannelOptions):
    """[notifiers.NAME] with type = "pagerduty": an Events API v2 integration."""

    type: Literal["pagerduty"] = "pagerduty"
    routing_key: Annotated[Secret, AfterValidator(_integration_key)]
    events_url: Url = DEFAULT_EVENTS_URL
    source: OptText = None
    timeout: Timeout = DEFAULT_TIMEOUT

    def secrets(self) -> list[str]:
        return [self.routing_key.get_secret_value()]


def dedup_key(alert_key: str) -> str:
    alert_key = escape_controls(alert_key)  # deterministic: trigger and resolve still pair
    if len(alert_key) <= DEDUP_KEY_MAX:
        return alert_key
    digest = hashlib.sha256(alert_key.encode()).hexdigest()[:16]
    return alert_key[: DEDUP_KEY_MAX - 17] + "-" + digest


def build_event(
    message: AlertMessage, *, routing_key: str, source: str | None = None, action: str | None = None
) -> dict[str, Any]:
    """One Events API v2 body. acknowledge and resolve carry only the key and the action."""
    event_action = action or ACTIONS.get(message.kind, "trigger")
    event: dict[str, Any] = {
        "routing_key": routing_key,
        "event_action": event_action,
        "dedup_key": dedup_key(message.alert_key),
    }
    if event_action != "trigger":
        return event
    values = context(message)
    # Shown to people in PagerDuty's UI and apps: a sender's control characters escaped.
    name = escape_controls(message.scope_name)
    details: dict[str, Any] = {
        "summary": escape_controls(message.summary),
        "rule": message.rule,
        "rule_kind": message.rule_kind,
        message.scope: name,
        "measured": values["measure"],
        "value": message.value,
        "threshold": message.threshold,
        "window_seconds": message.window_seconds,
        "counts": dict(message.counts),
        "top_errors": [
            f"{e.count}x {oneline(e.example, 300)} [{e.label}]"
            for e in message.top_errors[:10]
        ],
        "started_at": iso(message.started_at),
    }
    if message.kind == "reminder":
        details["reminder"] = True
    payload: dict[str, Any] = {
        "summary": short(values["title"], SUMMARY_MAX),
        "source": source or name or "hookwatch",
        "severity": message.severity if message.severity in SEVERITIES else "error",
        "timestamp": iso(message.at),
        "class": message.rule_kind,
        "custom_details": {k: v for k, v in details.items() if v is not None},
    }
    # component = the model, group = the deployment, as the issue asks.
    if message.scope == "deployment":
        payload["group"] = name
    else:
        payload["component"] = name
    event["payload"] = payload
    event["client"] = "hookwatch"
    link = values["link"]
    if link.startswith(("http://", "https://")):
        # PagerDuty's "View in hookwatch": the alert page too, as every link we send.
        event["client_url"] = link
        event["links"] = [{"href": link, "text": "Open in hookwatch"}]
    return event


class PagerDutyNotifier:
    min_interval = 0.0

    def __init__(
        self, name: str, options: PagerDutyOptions, *, transport: httpx.BaseTransport | None = None
    ) -> None:
        self.name = name
        self.options = options
        self._client = make_client(options.timeout, transport)

    def destination(self) -> str:
        return f"pagerduty:{self.options.events_url}"

    def send(self, message: AlertMessage, context: SendContext) -> SendResult | None:
        key = self.options.routing_key.get_secret_value()
        events = [build_event(message, routing_key=key, source=self.options.source)]
        if message.kind == "test":
            # A test opens an incident (that is what it tests) and closes it at once.
            events.append(build_event(message, routing_key=key, action="resolve"))
        status = 0
        for event in events:
            status = self._post(event, context)
        return SendResult(http_status=status)

    def _post(self, event: dict[str, Any], context: SendContext) -> int:
        response = self._client.post(self.options.events_url, who="PagerDuty", json=event)
        status = response.status_code
        if 200 <= status < 300:  # 202 Accepted, normally
            return status
        # 400: invalid event (never retry); 429: throttled; 5xx: retry.
        # https://developer.pagerduty.com/docs/events-api-v2/overview/#response-codes--retry-logic
        raise refused("PagerDuty", status=status, body=response.text,
                      retry_after=response.headers.get("retry-after"), now=context.now)

    def abort(self) -> None:
        self._client.abort()

    def close(self) -> None:
        self._client.close()
