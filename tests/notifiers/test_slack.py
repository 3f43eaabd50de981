"""Slack through the shared httpx client against a local recording server."""

from __future__ import annotations

import logging
from collections.abc import Iterator

import pytest

from hookwatch.notifiers.base import Notifier, NotifyError, SendContext
from hookwatch.notifiers.registry import build
from tests.notifiers.helpers import (
    SLACK_PATH,
    SLACK_TOKEN,
    Receiver,
    alert,
    notifier_configs,
    slack_api_answer,
)

NOW = 1_795_000_100.0


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    with Receiver() as server:
        yield server


@pytest.fixture
def api() -> Iterator[Receiver]:
    with Receiver(answer=slack_api_answer) as server:
        yield server


def webhook_notifier(receiver: Receiver) -> Notifier:
    config = notifier_configs({"team": {"type": "slack",
                                        "webhook_url": receiver.url + SLACK_PATH}})["team"]
    return build(config)


def token_notifier(api: Receiver) -> Notifier:
    config = notifier_configs({"bot": {"type": "slack", "token": SLACK_TOKEN,
                                       "channel": "C0TEST", "api_url": api.url + "/api/"}})
    return build(config["bot"])


def test_incoming_webhook_posts_block_kit(receiver: Receiver,
                                          caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    webhook_notifier(receiver).send(alert(), SendContext(now=NOW, notification_id=1))
    (request,) = receiver.requests
    assert request.path == SLACK_PATH
    body = request.json()
    assert body["text"].startswith("[FIRING · critical] deployment acme/sdxl")
    assert body["unfurl_links"] is False
    types = [b["type"] for b in body["blocks"]]
    assert types == ["header", "section", "section", "actions", "context"]
    section = body["blocks"][1]["text"]["text"]
    assert "*Measured:* error rate 35.0% (threshold 20.0%) over 10m" in section
    assert "121 predictions: 78 succeeded, 42 failed, 1 canceled, 0 aborted" in section
    assert "30\u00d7 `CUDA out of memory" in body["blocks"][2]["text"]["text"]
    assert body["blocks"][3]["elements"][0]["url"] == "https://hooks.example.com/alerts/7"
    # httpx logs the request URL; the secret path never reaches a record
    assert caplog.records
    assert SLACK_PATH not in caplog.text and "sl4ckS3cret" not in caplog.text


def test_webhook_errors(receiver: Receiver) -> None:
    sender = webhook_notifier(receiver)
    receiver.fail(1, 429, {"Retry-After": "30"}, b"rate_limited")
    receiver.fail(1, 500, body=b"internal_error")
    receiver.fail(1, 404, body=b"no_service")
    with pytest.raises(NotifyError) as info:
        sender.send(alert(), SendContext(now=NOW))
    assert (info.value.retryable, info.value.retry_after, info.value.http_status) == (True, 30, 429)
    with pytest.raises(NotifyError) as info:
        sender.send(alert(), SendContext(now=NOW))
    assert info.value.retryable and info.value.http_status == 500
    with pytest.raises(NotifyError) as info:
        sender.send(alert(), SendContext(now=NOW))
    assert not info.value.retryable
    assert info.value.detail == "Slack webhook answered HTTP 404: no_service"
    assert len(receiver.requests) == 3  # the client retried nothing by itself


def test_token_path_threads_the_resolution(api: Receiver) -> None:
    sender = token_notifier(api)
    trigger = sender.send(alert(), SendContext(now=NOW, notification_id=1))
    assert trigger is not None and trigger.external_ref
    sender.send(alert("resolve", resolved_at=NOW),
                SendContext(now=NOW, notification_id=2, thread_ref=trigger.external_ref))
    first, second = api.requests
    assert first.path == second.path == "/api/chat.postMessage"
    assert first.headers["authorization"] == f"Bearer {SLACK_TOKEN}"
    assert first.json()["channel"] == "C0TEST" and "thread_ts" not in first.json()
    body = second.json()
    assert body["thread_ts"] == trigger.external_ref
    assert body["reply_broadcast"] is True
    assert body["text"].startswith("[RESOLVED] deployment acme/sdxl")


def test_token_path_errors(api: Receiver) -> None:
    sender = token_notifier(api)
    api.fail(1, 429, {"Retry-After": "7", "content-type": "application/json"},
             b'{"ok": false, "error": "ratelimited"}')
    api.fail(1, 200, {"content-type": "application/json"},
             b'{"ok": false, "error": "channel_not_found"}')
    api.fail(1, 200, {"content-type": "application/json"},
             b'{"ok": false, "error": "internal_error"}')
    with pytest.raises(NotifyError) as info:
        sender.send(alert(), SendContext(now=NOW))
    assert (info.value.retryable, info.value.retry_after, info.value.http_status) == (True, 7, 429)
    with pytest.raises(NotifyError) as info:
        sender.send(alert(), SendContext(now=NOW))
    assert not info.value.retryable
    assert info.value.detail == "Slack chat.postMessage failed: HTTP 200, error channel_not_found"
    with pytest.raises(NotifyError) as info:
        sender.send(alert(), SendContext(now=NOW))
    assert info.value.retryable
    assert SLACK_TOKEN not in str(info.value)


def test_unreachable_is_temporary_and_quotes_no_url() -> None:
    with Receiver() as gone:
        sender = webhook_notifier(gone)
    with pytest.raises(NotifyError) as info:
        sender.send(alert(), SendContext(now=NOW))
    assert info.value.retryable
    assert "sl4ckS3cret" not in info.value.detail
