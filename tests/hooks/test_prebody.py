"""What the headers can refuse is refused before a byte of the body is read; bodies held at
once are capped (hooks.budget); a stalled writer refuses before the body too.

The app is driven with ASGI messages directly, so "not read" is exact: the receive callable
records every call.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

import pytest
from fastapi import FastAPI

from hookwatch.hooks.route import PATH
from tests.conftest import TOKEN, ManualClock, signed_headers

Sent = list[dict[str, Any]]


def call(app: FastAPI, headers: dict[str, str], chunks: list[bytes]) -> tuple[int, dict[str, str],
                                                                            bytes, int]:
    """(status, headers, body, how many body messages the app asked for)."""
    scope = {"type": "http", "method": "POST", "path": PATH, "query_string": b"",
             "headers": [(k.lower().encode(), v.encode()) for k, v in headers.items()]}
    asked = 0

    async def receive() -> dict[str, Any]:
        nonlocal asked
        asked += 1
        if asked > len(chunks):
            return {"type": "http.disconnect"}
        return {"type": "http.request", "body": chunks[asked - 1],
                "more_body": asked < len(chunks)}

    sent: Sent = []

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    asyncio.run(app(scope, receive, send))
    start, body = sent
    answer = {k.decode(): v.decode() for k, v in start["headers"]}
    return start["status"], answer, body["body"], asked


BIG = str(900_000)
NOW = ManualClock().now  # the app_factory clock's start


@pytest.mark.parametrize(("headers", "code"), [
    ({"content-type": "application/json"}, "missing_credentials"),
    ({"authorization": "Bearer wrong"}, "invalid_token"),
    ({"authorization": "Basic abc"}, "malformed_authorization"),
    ({"webhook-id": "msg_1", "webhook-timestamp": str(int(NOW) - 3600),
      "webhook-signature": "v1,AAAA"}, "stale_timestamp"),
    ({"webhook-id": "msg_1", "webhook-timestamp": str(int(NOW) + 3600),
      "webhook-signature": "v1,AAAA"}, "future_timestamp"),
    ({"webhook-id": "msg_1", "webhook-timestamp": "soon", "webhook-signature": "v1,AAAA"},
     "malformed_timestamp"),
    ({"webhook-id": "msg_1", "webhook-timestamp": str(int(NOW)),
      "webhook-signature": "v2,zzz v1,not*base64"}, "malformed_signature"),
    ({"webhook-id": "msg_1"}, "missing_signature_header"),
])
def test_refused_on_the_head_without_reading_the_body(
    app_factory: Callable[..., FastAPI], headers: dict[str, str], code: str
) -> None:
    app = app_factory()
    status, answer, body, asked = call(app, {**headers, "content-length": BIG}, [b"x" * 1000])
    assert (status, asked) == (401, 0), body
    assert code.encode() in body
    assert answer["connection"] == "close"  # the unread rest is never read
    assert app.state.runtime.receiver.budget.held == 0


def test_a_forged_signature_is_refused_after_its_body(
    app_factory: Callable[..., FastAPI]
) -> None:
    app = app_factory()
    good = signed_headers(b'{"id":"p","status":"failed"}', timestamp=NOW)
    status, _answer, body, asked = call(app, good, [b'{"id":"p","status":"succeeded"}'])
    assert (status, asked) == (401, 1) and b"invalid_signature" in body


def test_a_declared_length_past_the_budget_is_refused_503_before_the_body(
    app_factory: Callable[..., FastAPI]
) -> None:
    app = app_factory(max_buffered_bytes=1000)
    headers = {"authorization": f"Bearer {TOKEN}", "content-type": "application/json",
               "content-length": "1001"}
    status, answer, body, asked = call(app, headers, [b"x" * 1001])
    assert (status, asked) == (503, 0)
    assert b'"error":"server_busy"' in body and answer["retry-after"] == "1"
    assert app.state.runtime.receiver.budget.held == 0 and app.state.runtime.receiver.budget.refused == 1


def test_chunks_without_a_length_are_counted_as_they_arrive(
    app_factory: Callable[..., FastAPI]
) -> None:
    app = app_factory(max_buffered_bytes=1000)
    headers = {"authorization": f"Bearer {TOKEN}", "content-type": "application/json"}
    status, _answer, body, asked = call(app, headers, [b"x" * 600, b"x" * 600, b"x" * 600])
    assert (status, asked) == (503, 2) and b"server_busy" in body  # the third is never read
    assert app.state.runtime.receiver.budget.held == 0


def test_the_budget_is_given_back_after_each_answer(
    app_factory: Callable[..., FastAPI]
) -> None:
    """Held while the request waits for its commit, given back whatever the answer."""
    from fastapi.testclient import TestClient

    app = app_factory(max_buffered_bytes=100_000)
    with TestClient(app) as client:
        body = b'{"id":"p1","status":"succeeded"}'
        for _ in range(3):
            answer = client.post(PATH, content=body, headers={
                "authorization": f"Bearer {TOKEN}", "content-type": "application/json"})
            assert answer.status_code == 200
        assert client.post(PATH, content=b"{", headers={
            "authorization": f"Bearer {TOKEN}", "content-type": "application/json"}
        ).status_code == 422
        budget = app.state.runtime.receiver.budget
        assert budget.held == 0 and budget.peak == len(body)


def test_a_stalled_writer_refuses_before_the_body(app_factory: Callable[..., FastAPI]) -> None:
    app = app_factory()
    app.state.runtime.writer.health.stalled = True
    headers = {"authorization": f"Bearer {TOKEN}", "content-type": "application/json",
               "content-length": "30"}
    status, answer, body, asked = call(app, headers, [b"x" * 30])
    assert (status, asked) == (503, 0)
    assert b"store_unavailable" in body and answer["retry-after"] == "1"
