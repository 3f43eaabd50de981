"""The Microsoft Teams channel: an Adaptive Card POSTed to a Teams Workflows webhook.

Workflows ("Post to a channel when a webhook request is received") accept a message whose
attachments are Adaptive Cards; the old Office 365 connectors' MessageCard is not accepted.
https://learn.microsoft.com/en-us/microsoftteams/platform/webhooks-and-connectors/how-to/add-incoming-webhook
"""

from __future__ import annotations

import hashlib
from typing import Annotated, Any, Literal

import httpx
import orjson
from pydantic import AfterValidator, SecretStr

from hookwatch.notifiers.base import DEFAULT_TIMEOUT, SendContext, SendResult
from hookwatch.notifiers.fields import ChannelOptions, Secret, Timeout, problem, url_ok
from hookwatch.notifiers.http import make_client, post, refused
from hookwatch.notifiers.limits import cut, most_that_fit
from hookwatch.notifiers.message import AlertMessage
from hookwatch.notifiers.redact import url_secrets
from hookwatch.notifiers.render import context, oneline, render, utc

CARD_CONTENT_TYPE = "application/vnd.microsoft.card.adaptive"
CARD_SCHEMA = "http://adaptivecards.io/schemas/adaptive-card.json"
# 1.4: what Teams renders on every client (desktop, web, mobile) that Workflows post to.
CARD_VERSION = "1.4"
# Teams refuses messages over 28 KB; people measure less in practice, so keep a margin.
BODY_MAX_BYTES = 20_000
TEXT_MAX = 2000
FACT_VALUE_MAX = 500
COLOURS = {"critical": "Attention", "error": "Attention", "warning": "Warning", "info": "Accent"}


def _workflows_url(value: SecretStr) -> SecretStr:
    if not url_ok(value.get_secret_value()):
        raise problem("must be an https:// URL (a Teams Workflows webhook)")
    return value


class TeamsOptions(ChannelOptions):
    """[notifiers.NAME] with type = "teams": a Teams Workflows webhook."""

    type: Literal["teams"] = "teams"
    webhook_url: Annotated[Secret, AfterValidator(_workflows_url)]
    timeout: Timeout = DEFAULT_TIMEOUT

    def secrets(self) -> list[str]:
        # A Workflows URL is its own credential: the `sig` query value above all.
        return url_secrets(self.webhook_url.get_secret_value())


def _text(text: str, **style: Any) -> dict[str, Any]:
    return {"type": "TextBlock", "text": cut(text, TEXT_MAX) or " ", "wrap": True, **style}


def _fact(title: str, value: str) -> dict[str, str]:
    return {"title": cut(title, 100), "value": cut(value, FACT_VALUE_MAX) or " "}


def build_card(message: AlertMessage, *, errors_shown: int | None = None) -> dict[str, Any]:
    """The Adaptive Card: a heading, the summary, facts, the top errors, one OpenUrl action."""
    values = context(message)
    if message.kind == "resolve":
        colour = "Good"
    elif message.kind == "acknowledge":
        colour = "Default"
    else:
        colour = COLOURS.get(message.severity, "Default")
    facts = [_fact("Measured", values["measure"])]
    if values["counts_line"]:
        facts.append(_fact("Predictions", values["counts_line"]))
    facts += [
        _fact("Severity", message.severity),
        _fact("Scope", f"{message.scope} {message.scope_name}"),
        _fact("Rule", f"{message.rule} ({message.rule_kind})"),
        _fact("Started", utc(message.started_at)),
    ]
    if message.kind == "resolve":
        facts.append(_fact("Resolved", f"{utc(message.resolved_at or message.at)} "
                                       f"(firing for {values['firing_for']})"))
    body: list[dict[str, Any]] = [
        _text(values["title"], size="Medium", weight="Bolder", style="heading", color=colour),
        _text(render("teams.md.j2", message, values).strip()),
        {"type": "FactSet", "facts": facts},
    ]
    errors = message.top_errors if message.kind != "resolve" else []
    shown = len(errors) if errors_shown is None else errors_shown
    if errors:
        body.append(_text("Top errors", weight="Bolder", spacing="Medium"))
        if shown:
            body.append({"type": "FactSet", "facts": [
                _fact(f"{e.count}\u00d7", f"{oneline(e.example, 300)} ({e.fingerprint[:12]})")
                for e in errors[:shown]
            ]})
        if shown < len(errors):
            body.append(_text(f"… and {len(errors) - shown} more", isSubtle=True))
    card: dict[str, Any] = {
        "$schema": CARD_SCHEMA,
        "type": "AdaptiveCard",
        "version": CARD_VERSION,
        "body": body,
        "msteams": {"width": "Full"},
        "fallbackText": cut(values["title"], 300),
    }
    link = values["link"]
    if link.startswith(("http://", "https://")):
        card["actions"] = [{"type": "Action.OpenUrl", "title": "Open in hookwatch", "url": link}]
    return card


def build_body(message: AlertMessage) -> dict[str, Any]:
    """The webhook body, with as many top errors as keep it under BODY_MAX_BYTES."""
    def body(n: int | None) -> dict[str, Any]:
        return {"type": "message", "attachments": [{
            "contentType": CARD_CONTENT_TYPE, "contentUrl": None,
            "content": build_card(message, errors_shown=n),
        }]}

    total = len(message.top_errors)
    shown = most_that_fit(total, lambda n: len(orjson.dumps(body(n))) <= BODY_MAX_BYTES)
    return body(shown)


class TeamsNotifier:
    # Webhooks to Teams are throttled past about 4 requests a second.
    min_interval = 0.25

    def __init__(
        self, name: str, options: TeamsOptions, *, transport: httpx.BaseTransport | None = None
    ) -> None:
        self.name = name
        self.options = options
        self._client = make_client(options.timeout, transport)

    def destination(self) -> str:
        digest = hashlib.sha256(self.options.webhook_url.get_secret_value().encode())
        return f"teams:{digest.hexdigest()[:16]}"

    def send(self, message: AlertMessage, context: SendContext) -> SendResult | None:
        # A Workflows webhook cannot reply to or edit an earlier card: each transition,
        # the resolution included, is a card of its own.
        response = post(self._client, self.options.webhook_url.get_secret_value(),
                        who="Teams", json=build_body(message))
        status = response.status_code
        if 200 <= status < 300:  # 202 Accepted: the flow runs after answering
            return SendResult(http_status=status)
        # 400 a card the flow refuses, 401/403 a bad signature, 404 a deleted flow, 413 too
        # large: permanent. 429 (honouring Retry-After) and 5xx: temporary.
        raise refused("Teams", status=status, body=response.text,
                      retry_after=response.headers.get("retry-after"), now=context.now)

    def abort(self) -> None:
        self._client.abort()

    def close(self) -> None:
        self._client.close()
