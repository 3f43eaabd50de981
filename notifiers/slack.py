"""The Slack channel: Block Kit, by incoming webhook or bot token + channel (chat.postMessage)."""

from __future__ import annotations

import dataclasses
import hashlib
import re
from typing import Annotated, Any, Literal

import orjson
from pydantic import AfterValidator, SecretStr, model_validator

from hookwatch.notifiers.base import (
    DEFAULT_TIMEOUT,
    NotifyError,
    SendContext,
    SendResult,
    parse_retry_after,
    retryable_status,
    short,
)
from hookwatch.notifiers.fields import (
    ChannelOptions,
    OptSecret,
    OptText,
    Timeout,
    Url,
    problem,
    url_ok,
)
from hookwatch.notifiers.http import make_client, refused
from hookwatch.notifiers.message import AlertMessage
from hookwatch.notifiers.render import context, render, slack_escape

DEFAULT_API_URL = "https://slack.com/api/"

# Block Kit limits: https://api.slack.com/reference/block-kit/blocks
MAX_BLOCKS = 50
SECTION_TEXT_MAX = 3000
HEADER_TEXT_MAX = 150
BUTTON_TEXT_MAX = 75
URL_MAX = 3000
# The top-level `text` is the notification fallback; Slack truncates past 40,000 characters.
FALLBACK_TEXT_MAX = 3000
# Slack API errors (HTTP 200, ok=false) that a later try may get past.
_RETRYABLE_API_ERRORS = {
    "ratelimited", "rate_limited", "internal_error", "fatal_error", "service_unavailable",
    "request_timeout", "team_added_to_org",
}


def _incoming_webhook(value: SecretStr | None) -> SecretStr | None:
    if value is not None and not url_ok(value.get_secret_value()):
        raise problem("must be an https:// URL (Slack incoming webhook)")
    return value


class SlackOptions(ChannelOptions):
    """[notifiers.NAME] with type = "slack": an incoming webhook, or a bot token + channel."""

    type: Literal["slack"] = "slack"
    webhook_url: Annotated[OptSecret, AfterValidator(_incoming_webhook)] = None
    token: OptSecret = None
    channel: OptText = None
    api_url: Url = DEFAULT_API_URL
    timeout: Timeout = DEFAULT_TIMEOUT

    @model_validator(mode="after")
    def _one_way(self) -> SlackOptions:
        hook, token = self.webhook_url is not None, self.token is not None
        if hook and token:
            raise problem("give either webhook_url or token + channel, not both", key="token")
        if not hook and not token:
            raise problem("is required (or token + channel for chat.postMessage)",
                          key="webhook_url")
        if token and not self.channel:
            raise problem("is required with token (a channel ID like C0123456789)",
                          key="channel")
        if hook and self.channel:
            raise problem("only applies with token; an incoming webhook posts to its own",
                          key="channel")
        return self

    def secrets(self) -> list[str]:
        values = []
        if self.webhook_url:
            url = self.webhook_url.get_secret_value()
            values.append(url)
            # The path (/services/T…/B…/secret) is the credential; errors may quote it alone.
            path = url.split("://", 1)[-1].partition("/")[2]
            if path:
                values.append("/" + path)
        if self.token:
            values.append(self.token.get_secret_value())
        return values


def _section(text: str) -> dict[str, Any]:
    return {"type": "section", "text": {"type": "mrkdwn", "text": fit(text, SECTION_TEXT_MAX)}}


_PARTIAL_ENTITY = re.compile(r"&[a-z]{0,3}$")


def fit(text: str, limit: int) -> str:
    """At most `limit` characters, never cutting an escape like &amp; in half."""
    text = text.strip()
    if len(text) <= limit:
        return text
    return _PARTIAL_ENTITY.sub("", text[: limit - 1]) + "…"


def build_blocks(message: AlertMessage) -> tuple[str, list[dict[str, Any]]]:
    """The fallback text and the Block Kit blocks for one message."""
    values = context(message)
    header = {
        "type": "header",
        "text": {"type": "plain_text", "text": fit(f"{values['icon']} {values['title']}",
                                                   HEADER_TEXT_MAX), "emoji": True},
    }
    blocks: list[dict[str, Any]] = [header, _section(render("slack.mrkdwn.j2", message, values))]
    if message.top_errors and message.kind != "resolve":
        blocks.append(_section(render("slack_errors.mrkdwn.j2", message, values)))
    link = values["link"]
    if link and len(link) <= URL_MAX and link.startswith(("http://", "https://")):
        blocks.append({
            "type": "actions",
            "elements": [{
                "type": "button",
                "text": {"type": "plain_text", "text": "Open in hookwatch"[:BUTTON_TEXT_MAX]},
                "url": link,
                "action_id": "hookwatch_open",
            }],
        })
    blocks.append({
        "type": "context",
        "elements": [{"type": "mrkdwn", "text": fit(render("slack_context.mrkdwn.j2", message,
                                                           values), SECTION_TEXT_MAX)}],
    })
    fallback = fit(slack_escape(values["title"]), FALLBACK_TEXT_MAX)
    return fallback, blocks[:MAX_BLOCKS]


class SlackNotifier:
    """Posts with the shared HTTP client (notifiers.http), not slack-sdk's urllib clients:
    their timeout is per socket read and they read every answer whole, so one trickling or
    huge answer would hold the channel; the wire format is the same JSON either way."""

    min_interval = 1.0  # https://api.slack.com/apis/rate-limits#posting-messages

    def __init__(self, name: str, options: SlackOptions) -> None:
        self.name = name
        self.options = options
        self._client = make_client(options.timeout)

    def destination(self) -> str:
        if self.options.webhook_url is not None:
            digest = hashlib.sha256(self.options.webhook_url.get_secret_value().encode())
            return f"slack:webhook:{digest.hexdigest()[:16]}"
        return f"slack:{self.options.api_url}:{self.options.channel}"

    def send(self, message: AlertMessage, context: SendContext) -> SendResult | None:
        text, blocks = build_blocks(message)
        if self.options.webhook_url is not None:
            return self._send_webhook(text, blocks, context)
        return self._post(message, text, blocks, context)

    def _send_webhook(
        self, text: str, blocks: list[dict[str, Any]], context: SendContext
    ) -> SendResult:
        assert self.options.webhook_url is not None
        response = self._client.post(self.options.webhook_url.get_secret_value(),
                                     who="Slack webhook", json={
                                         "text": text, "blocks": blocks, "unfurl_links": False})
        status = response.status_code
        if status == 200:
            return SendResult(http_status=status)
        # Incoming webhook errors: https://api.slack.com/messaging/webhooks#handling_errors
        raise refused("Slack webhook", status=status, body=response.content,
                      retry_after=response.headers.get("retry-after"), now=context.now)

    def _post(
        self, message: AlertMessage, text: str, blocks: list[dict[str, Any]], context: SendContext
    ) -> SendResult:
        threaded = message.kind != "trigger" and context.thread_ref is not None
        body: dict[str, Any] = {
            "channel": self.options.channel or "", "text": text, "blocks": blocks,
            "unfurl_links": False,
        }
        if threaded:
            # Resolutions, reminders and acknowledgements go in the trigger's thread; the
            # resolution and reminders are also shown in the channel.
            body["thread_ts"] = context.thread_ref
            if message.kind in ("resolve", "reminder"):
                body["reply_broadcast"] = True
        if threaded and message.group is not None:
            # The group's parent message shows the group as it is now (first, so that a failed
            # update is retried before the reply exists: chat.update may be repeated).
            # https://api.slack.com/methods/chat.update
            parent = dataclasses.replace(
                message, kind="resolve" if message.kind == "resolve" else "trigger")
            parent_text, parent_blocks = build_blocks(parent)
            self.call("chat.update", {"channel": self.options.channel or "",
                                      "ts": context.thread_ref, "text": parent_text,
                                      "blocks": parent_blocks}, context)
        answer = self.call("chat.postMessage", body, context)
        ts = answer.get("ts")
        return SendResult(external_ref=str(ts) if ts else None, http_status=200)

    def call(self, method: str, body: dict[str, Any], context: SendContext) -> dict[str, Any]:
        """One Web API method (https://api.slack.com/web#posting_json); its ok answer."""
        assert self.options.token is not None
        response = self._client.post(
            self.options.api_url.rstrip("/") + "/" + method, who="Slack", json=body,
            headers={"authorization": f"Bearer {self.options.token.get_secret_value()}"})
        status = response.status_code
        try:
            answer = orjson.loads(response.content)
        except orjson.JSONDecodeError:
            answer = {}
        if not isinstance(answer, dict):
            answer = {}
        if status == 200 and answer.get("ok") is True:
            return answer
        code = short(str(answer.get("error") or ""), 100)
        retryable = retryable_status(status) if status != 200 else code in _RETRYABLE_API_ERRORS
        raise NotifyError(
            f"Slack {method} failed: HTTP {status}{f', error {code}' if code else ''}",
            retryable=retryable,
            retry_after=parse_retry_after(response.headers.get("retry-after"), context.now),
            http_status=status or None,
        )

    def abort(self) -> None:
        self._client.abort()

    def close(self) -> None:
        self._client.close()
