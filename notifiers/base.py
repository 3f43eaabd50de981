"""The notifier interface: send(), its context and result, and the error saying if a retry helps."""

from __future__ import annotations

import email.utils
import math
from dataclasses import dataclass
from typing import Any, Protocol

from hookwatch.notifiers.message import AlertMessage

# Seconds; a receiver may not hold its channel longer than this for a whole exchange.
DEFAULT_TIMEOUT = 10.0
# A Retry-After longer than this is clamped: the worker's own max age decides when to give up.
MAX_RETRY_AFTER = 3600.0


class NotifyError(Exception):
    """A failed send. `retryable` is Alertmanager's "would a retry help?" (5xx, 429, timeouts).

    The detail never holds a secret; the worker scrubs it once more before storing it.
    """

    def __init__(
        self,
        detail: str,
        *,
        retryable: bool,
        retry_after: float | None = None,
        http_status: int | None = None,
    ) -> None:
        super().__init__(detail)
        self.detail = detail
        self.retryable = retryable
        self.retry_after = retry_after
        self.http_status = http_status


@dataclass(frozen=True)
class SendContext:
    """What a notifier may need besides the message."""

    now: float
    notification_id: int | None = None  # None for `hookwatch test-notify`
    # external_ref of this alert's first delivered trigger on this notifier: a Slack message
    # ts (resolutions go in its thread) or an email Message-ID (In-Reply-To).
    thread_ref: str | None = None


@dataclass(frozen=True)
class SendResult:
    external_ref: str | None = None  # stored on the outbox row (Slack ts, email Message-ID)
    http_status: int | None = None


class Notifier(Protocol):
    """One channel. Built from its NotifierConfig; `send` returns or raises NotifyError."""

    name: str
    # At most one message per `min_interval` seconds to one destination (Slack: 1 s,
    # https://api.slack.com/apis/rate-limits#posting-messages); 0 = no limit.
    min_interval: float

    def destination(self) -> str: ...

    def send(self, message: AlertMessage, context: SendContext) -> SendResult | None: ...

    def abort(self) -> None:
        """Stop a send in flight now, from another thread (service shutdown)."""

    def close(self) -> None: ...


def retryable_status(status: int) -> bool:
    """5xx, 429 and 408 may pass on a later try; any other 4xx will not."""
    return status >= 500 or status in (408, 429)


def parse_retry_after(value: str | None, now: float) -> float | None:
    """Seconds to wait, from delta-seconds or an HTTP-date (RFC 9110 section 10.2.3)."""
    if not value:
        return None
    value = value.strip()
    try:
        seconds = float(value)
    except ValueError:
        try:
            when = email.utils.parsedate_to_datetime(value)
        except (TypeError, ValueError):
            return None
        seconds = when.timestamp() - now
    if math.isnan(seconds):
        return None
    return min(max(seconds, 0.0), MAX_RETRY_AFTER)


def short(text: str, limit: int = 300) -> str:
    """One line of at most `limit` characters, for error details."""
    flat = " ".join(text.split())
    return flat if len(flat) <= limit else flat[: limit - 1] + "…"


def response_detail(body: Any) -> str:
    """The useful part of a receiver's error answer, shortened."""
    if isinstance(body, bytes):
        body = body.decode("utf-8", "replace")
    return short(str(body), 200)
