"""The Slack channel: Block Kit through slack-sdk, by incoming webhook or bot token + channel."""

from __future__ import annotations

import hashlib
import logging
import math
import re
import socket
import urllib.error
from collections.abc import Mapping
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, SecretStr, model_validator
from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError, SlackRequestError
from slack_sdk.webhook import WebhookClient

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
from hookwatch.notifiers.http import refused
from hookwatch.notifiers.message import AlertMessage
from hookwatch.notifiers.render import context, render, slack_escape

DEFAULT_API_URL = "https://slack.com/api/"
# slack-sdk logs request URLs at DEBUG; it gets this logger, which redacts secrets.
SDK_LOGGER = logging.getLogger("hookwatch.notifiers.slack_sdk")

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


def _header(headers: Mapping[str, Any] | Any, name: str) -> str | None:
    if headers is None:
        return None
    getter = getattr(headers, "get", None)
    if getter is None:
        return None
    for candidate in (name, name.lower(), name.title()):
        value = getter(candidate)
        if value is not None:
            return str(value)
    if isinstance(headers, Mapping):
        for key, value in headers.items():
            if str(key).lower() == name.lower():
                return str(value)
    return None


class SlackNotifier:
    min_interval = 1.0  # https://api.slack.com/apis/rate-limits#posting-messages

    def __init__(self, name: str, options: SlackOptions) -> None:
        self.name = name
        self.options = options
        timeout = math.ceil(options.timeout)
        self._webhook: WebhookClient | None = None
        self._web: WebClient | None = None
        # retry_handlers=[]: the outbox worker owns retries and backoff, the SDK must not.
        if options.webhook_url is not None:
            self._webhook = WebhookClient(
                options.webhook_url.get_secret_value(), timeout=timeout, logger=SDK_LOGGER,
                retry_handlers=[],
            )
        else:
            assert options.token is not None
            self._web = WebClient(
                token=options.token.get_secret_value(), base_url=options.api_url,
                timeout=timeout, logger=SDK_LOGGER, retry_handlers=[],
            )

    def destination(self) -> str:
        if self.options.webhook_url is not None:
            digest = hashlib.sha256(self.options.webhook_url.get_secret_value().encode())
            return f"slack:webhook:{digest.hexdigest()[:16]}"
        return f"slack:{self.options.api_url}:{self.options.channel}"

    def send(self, message: AlertMessage, context: SendContext) -> SendResult | None:
        text, blocks = build_blocks(message)
        try:
            if self._webhook is not None:
                return self._send_webhook(text, blocks, context)
            return self._post(message, text, blocks, context)
        except NotifyError:
            raise
        except SlackApiError as exc:
            raise self._api_error(exc, context) from None
        except SlackRequestError as exc:
            raise NotifyError(f"Slack request refused by the SDK: {short(str(exc), 200)}",
                              retryable=False) from None
        except (urllib.error.URLError, OSError) as exc:
            raise _network_error(exc) from None

    def _send_webhook(
        self, text: str, blocks: list[dict[str, Any]], context: SendContext
    ) -> SendResult:
        assert self._webhook is not None
        response = self._webhook.send(text=text, blocks=blocks, unfurl_links=False)
        status = response.status_code
        if status == 200:
            return SendResult(http_status=status)
        # Incoming webhook errors: https://api.slack.com/messaging/webhooks#handling_errors
        raise refused("Slack webhook", status=status, body=response.body,
                      retry_after=_header(response.headers, "Retry-After"), now=context.now)

    def _post(
        self, message: AlertMessage, text: str, blocks: list[dict[str, Any]], context: SendContext
    ) -> SendResult:
        assert self._web is not None
        threaded = message.kind != "trigger" and context.thread_ref is not None
        response = self._web.chat_postMessage(
            channel=self.options.channel or "",
            text=text,
            blocks=blocks,
            unfurl_links=False,
            # Resolutions, reminders and acknowledgements go in the trigger's thread; the
            # resolution and reminders are also shown in the channel.
            thread_ts=context.thread_ref if threaded else None,
            reply_broadcast=True if threaded and message.kind in ("resolve", "reminder") else None,
        )
        ts = response.get("ts")
        return SendResult(external_ref=str(ts) if ts else None, http_status=response.status_code)

    def _api_error(self, exc: SlackApiError, context: SendContext) -> NotifyError:
        response = exc.response
        status = int(getattr(response, "status_code", 0) or 0)
        try:
            code = short(str(response.get("error") or ""), 100)
        except Exception:
            code = ""
        retry_after = parse_retry_after(_header(getattr(response, "headers", None), "Retry-After"),
                                        context.now)
        retryable = retryable_status(status) if status != 200 else code in _RETRYABLE_API_ERRORS
        return NotifyError(
            f"Slack chat.postMessage failed: HTTP {status}{f', error {code}' if code else ''}",
            retryable=retryable,
            retry_after=retry_after,
            http_status=status or None,
        )

    def close(self) -> None:
        return None


def _network_error(exc: BaseException) -> NotifyError:
    reason = getattr(exc, "reason", exc)
    if isinstance(reason, socket.timeout | TimeoutError):
        return NotifyError("Slack did not answer in time", retryable=True)
    return NotifyError(f"cannot reach Slack: {short(str(reason), 200)}", retryable=True)
