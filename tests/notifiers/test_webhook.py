"""The signed JSON webhook through httpx against a local server; hookwatch verifies its own."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from standardwebhooks import Webhook

from hookwatch.hooks.signature import Verifier
from hookwatch.notifiers.base import Notifier, NotifyError, SendContext
from hookwatch.notifiers.registry import build
from tests.notifiers.helpers import HOOK_SECRET, Receiver, alert, notifier_configs

NOW = 1_795_000_100.0


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    with Receiver() as server:
        yield server


def notifier(server: Receiver, path: str = "/alerts?token=qu3ryT0ken") -> Notifier:
    return build(notifier_configs({"hook": {
        "type": "webhook", "url": server.url + path, "secret": HOOK_SECRET}})["hook"])


def test_signed_document_verifies_with_hookwatch_and_the_reference_library(
    receiver: Receiver,
) -> None:
    notifier(receiver).send(alert(), SendContext(now=NOW, notification_id=42))
    (request,) = receiver.requests
    assert request.path == "/alerts?token=qu3ryT0ken"
    assert request.headers["webhook-id"] == "msg_hookwatch_42"
    assert request.headers["webhook-timestamp"] == str(int(NOW))
    Verifier([HOOK_SECRET], None).verify(request.headers, request.body, NOW)
    document = request.json()
    assert document["type"] == "alert.trigger"
    assert document["timestamp"] == "2026-11-18T11:08:20.000Z"
    data = document["data"]
    assert data["status"] == "firing"
    assert data["alert_key"] == "deployment-error-rate:deployment:acme/sdxl"
    assert data["counts"]["failed"] == 42
    assert data["top_errors"][0]["fingerprint"] == "a1b2c3d4e5f6a7b8"
    assert data["title"].startswith("[FIRING · critical]")


def test_the_reference_library_accepts_it_too(receiver: Receiver) -> None:
    import time

    now = time.time()  # standardwebhooks compares the timestamp with the real clock
    notifier(receiver).send(alert("resolve", resolved_at=now), SendContext(now=now))
    (request,) = receiver.requests
    document = Webhook(HOOK_SECRET).verify(request.body, dict(request.headers))
    assert document["type"] == "alert.resolve"
    assert document["data"]["status"] == "resolved"


def test_a_retry_keeps_the_webhook_id(receiver: Receiver) -> None:
    receiver.fail(1, 503, {"Retry-After": "20"})
    sender = notifier(receiver)
    with pytest.raises(NotifyError) as info:
        sender.send(alert(), SendContext(now=NOW, notification_id=9))
    assert (info.value.retryable, info.value.retry_after) == (True, 20)
    sender.send(alert(), SendContext(now=NOW + 20, notification_id=9))
    first, second = receiver.requests
    assert first.headers["webhook-id"] == second.headers["webhook-id"] == "msg_hookwatch_9"
    assert first.headers["webhook-signature"] != second.headers["webhook-signature"]


@pytest.mark.parametrize(("status", "retryable"),
                         [(301, False), (400, False), (410, False), (408, True), (502, True)])
def test_status_codes(receiver: Receiver, status: int, retryable: bool) -> None:
    receiver.fail(1, status, {"location": "https://elsewhere.example.com/"})
    with pytest.raises(NotifyError) as info:
        notifier(receiver).send(alert(), SendContext(now=NOW))
    assert info.value.retryable is retryable
    assert info.value.http_status == status
    assert info.value.detail.startswith(f"127.0.0.1 answered HTTP {status}")
    assert "qu3ryT0ken" not in info.value.detail
