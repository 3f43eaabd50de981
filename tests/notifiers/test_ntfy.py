"""ntfy through httpx against a local server that answers as an ntfy server's publish does."""

from __future__ import annotations

import email.header
import logging
from collections.abc import Iterator
from typing import Any

import orjson
import pytest
from sqlalchemy import Engine

from hookwatch.notifiers.base import Notifier, NotifyError, SendContext
from hookwatch.notifiers.ntfy import BODY_MAX_BYTES, build_body
from hookwatch.notifiers.registry import build
from tests.conftest import ManualClock
from tests.notifiers.helpers import (
    NTFY_TOKEN,
    NTFY_TOPIC,
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


def published(request: Request) -> Answer:
    """https://docs.ntfy.sh/publish/: the message as JSON, with its id."""
    return 200, {"content-type": "application/json"}, orjson.dumps(
        {"id": "sPs71M8A2T", "time": 1795000100, "event": "message",
         "topic": request.path.strip("/"), "message": request.body.decode()})


@pytest.fixture
def ntfy() -> Iterator[Receiver]:
    with Receiver(answer=published) as server:
        yield server


def options(server: Receiver, **extra: Any) -> dict[str, Any]:
    return {"type": "ntfy", "url": server.url + NTFY_TOPIC, **extra}


def notifier(server: Receiver, **extra: Any) -> Notifier:
    return build(notifier_configs({"phone": options(server, **extra)})["phone"])


def title(value: str) -> str:
    """What ntfy shows: the header with its RFC 2047 encoded-words decoded."""
    return str(email.header.make_header(email.header.decode_header(value)))


def test_trigger_headers_and_body(ntfy: Receiver, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    caplog.set_level(logging.INFO, logger="httpx")  # `hookwatch` commands quieten it
    result = notifier(ntfy, token=NTFY_TOKEN).send(alert(), SendContext(now=NOW))
    (request,) = ntfy.requests
    assert request.path == NTFY_TOPIC
    headers = request.headers
    assert headers["title"].isascii()
    assert title(headers["title"]) == (
        "[FIRING · critical] deployment acme/sdxl: error rate 35.0% (threshold 20.0%) over 10m")
    assert headers["priority"] == "5"
    assert headers["tags"] == "rotating_light,hookwatch,critical,error_rate"
    assert headers["click"] == "https://hooks.example.com/alerts/7"
    assert headers["authorization"] == f"Bearer {NTFY_TOKEN}"
    assert headers["content-type"] == "text/plain; charset=utf-8"
    body = request.body.decode()
    assert body.startswith("acme/sdxl: 35.0% of predictions failed in the last 10m\n")
    assert "Measured: error rate 35.0% (threshold 20.0%) over 10m" in body
    assert "30\u00d7 CUDA out of memory. Tried to allocate 2.00 GiB" in body
    assert result is not None and result.external_ref == "sPs71M8A2T"
    assert any(r.name == "httpx" for r in caplog.records)  # it logged the URL, redacted
    assert NTFY_TOKEN not in caplog.text and NTFY_TOPIC not in caplog.text


@pytest.mark.parametrize(("severity", "kind", "priority", "tag"), [
    ("critical", "trigger", "5", "rotating_light"),
    ("error", "reminder", "4", "red_circle"),
    ("warning", "trigger", "3", "warning"),
    ("info", "trigger", "2", "information_source"),
    ("critical", "resolve", "3", "white_check_mark"),
    ("critical", "acknowledge", "2", "eyes"),
])
def test_priority_and_tags_by_severity(ntfy: Receiver, severity: str, kind: str,
                                       priority: str, tag: str) -> None:
    notifier(ntfy).send(alert(kind, severity=severity), SendContext(now=NOW))
    headers = ntfy.requests[0].headers
    assert headers["priority"] == priority
    assert headers["tags"].split(",")[0] == tag
    assert "authorization" not in headers  # no token configured, none sent


def test_huge_message_fits_4096_bytes(ntfy: Receiver) -> None:
    for kind in ("trigger", "resolve", "acknowledge"):
        body = build_body(huge_alert(kind, acknowledge_comment="é" * 9000))
        assert len(body.encode()) <= BODY_MAX_BYTES
    body = build_body(huge_alert())
    assert "… and " in body and " more" in body
    assert body.count("\n") > 5
    notifier(ntfy).send(huge_alert(scope_name="é" * 90_000), SendContext(now=NOW))
    request = ntfy.requests[0]
    assert len(request.body) <= BODY_MAX_BYTES
    assert len(request.headers["title"]) < 1100  # the title is cut to 250 characters first


def test_429_and_5xx_are_temporary_4xx_permanent(ntfy: Receiver) -> None:
    sender = notifier(ntfy, token=NTFY_TOKEN)
    ntfy.fail(1, 429, {"Retry-After": "12", "content-type": "application/json"},
              b'{"code":42901,"http":429,"error":"limit reached: too many requests"}')
    ntfy.fail(1, 500, body=b'{"code":50001,"http":500,"error":"internal server error"}')
    ntfy.fail(1, 403, body=b'{"code":40301,"http":403,"error":"forbidden"}')
    ntfy.fail(1, 413, body=b'{"code":41301,"http":413,"error":"request entity too large"}')
    expected = [(True, 12, 429), (True, None, 500), (False, None, 403), (False, None, 413)]
    for retryable, retry_after, status in expected:
        with pytest.raises(NotifyError) as info:
            sender.send(alert(), SendContext(now=NOW))
        assert (info.value.retryable, info.value.retry_after, info.value.http_status) == (
            retryable, retry_after, status)
    assert info.value.detail == (
        'ntfy answered HTTP 413: {"code":41301,"http":413,"error":"request entity too large"}')


def test_config_problems() -> None:
    problems = config_problems({
        "a": {"type": "ntfy", "url": "https://ntfy.sh/"},
        "b": {"type": "ntfy", "url": "https://ntfy.sh/x", "token": " tk_x "},
        "c": {"type": "ntfy"},
    })
    assert problems == [
        "notifiers.a.url: must be the topic's URL, e.g. https://ntfy.sh/acme-oncall",
        "notifiers.b.token: must not contain spaces or control characters at either end",
        "notifiers.c.url: is required",
    ]


def test_through_the_worker_after_a_5xx(sqlite_engine: Engine, ntfy: Receiver,
                                        clock: ManualClock) -> None:
    worker = make_worker(sqlite_engine, notifier_configs({"phone": options(ntfy)}))
    enqueue(sqlite_engine, alert(), notifier="phone", now=clock.now)
    enqueue(sqlite_engine, alert("resolve"), notifier="phone", now=clock.now + 1)
    ntfy.fail(1, 502)
    worker.deliver(clock.now)
    clock.advance(60)
    worker.deliver(clock.now)
    clock.advance(60)
    worker.deliver(clock.now)
    titles = [title(r.headers["title"]) for r in ntfy.requests]
    assert len(titles) == 3 and titles[0] == titles[1]
    assert titles[2].startswith("[RESOLVED] deployment acme/sdxl")
