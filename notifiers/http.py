"""The HTTP client the webhook and PagerDuty channels share, and how a failed answer reads."""

from __future__ import annotations

from typing import Any

import httpx

from hookwatch.notifiers.base import (
    NotifyError,
    parse_retry_after,
    response_detail,
    retryable_status,
)

USER_AGENT = "hookwatch"


def make_client(timeout: float, transport: httpx.BaseTransport | None = None) -> httpx.Client:
    """Redirects are not followed: a 3xx is an answer to report, never a reason to send an
    alert (and, for webhooks, its signed body) somewhere else."""
    return httpx.Client(
        timeout=timeout, transport=transport, follow_redirects=False,
        headers={"user-agent": USER_AGENT},
    )


def post(client: httpx.Client, url: str, *, who: str, **kwargs: Any) -> httpx.Response:
    """client.post; a timeout or a failed connection to `who` is a retryable NotifyError."""
    return request(client, "POST", url, who=who, **kwargs)


def request(
    client: httpx.Client, method: str, url: str | httpx.URL, *, who: str, **kwargs: Any
) -> httpx.Response:
    """client.request, with post()'s errors (Discord edits a message with PATCH)."""
    try:
        return client.request(method, url, **kwargs)
    except httpx.TimeoutException:
        raise NotifyError(f"{who} did not answer in time", retryable=True) from None
    except httpx.HTTPError as exc:
        raise NotifyError(f"cannot reach {who}: {type(exc).__name__}: {exc}",
                          retryable=True) from None


def refused(
    who: str, *, status: int, body: Any, retry_after: str | None, now: float
) -> NotifyError:
    """A non-2xx answer: retryable for 5xx, 408 and 429, honouring its Retry-After."""
    return NotifyError(
        f"{who} answered HTTP {status}: {response_detail(body)}",
        retryable=retryable_status(status),
        retry_after=parse_retry_after(retry_after, now),
        http_status=status,
    )
