"""hooks.route.read_body against scripted ASGI message sequences a server may send.

A client that goes away mid-body cannot be staged through TestClient, so the ASGI messages
(https://asgi.readthedocs.io/en/latest/specs/www.html#request-receive-event) are fed directly.
"""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from hookwatch.hooks.route import Refused, read_body


def _receive(*messages: dict[str, Any]) -> Any:
    queue = list(messages)

    async def receive() -> dict[str, Any]:
        return queue.pop(0)

    return receive


def _read(*messages: dict[str, Any], limit: int = 10) -> bytes:
    return asyncio.run(read_body(_receive(*messages), None, limit, timeout=5.0))


def test_chunks_are_joined_in_order() -> None:
    assert _read(
        {"type": "http.request", "body": b"ab", "more_body": True},
        {"type": "http.request", "body": b"cd", "more_body": True},
        {"type": "http.request", "body": b"e"},
    ) == b"abcde"


@pytest.mark.parametrize(
    "messages",
    [
        [{"type": "http.disconnect"}],
        [{"type": "http.request", "body": b"ab", "more_body": True}, {"type": "http.disconnect"}],
    ],
    ids=["before-body", "mid-body"],
)
def test_a_disconnect_is_refused_with_400(messages: list[dict[str, Any]]) -> None:
    with pytest.raises(Refused) as refused:
        _read(*messages)
    assert (refused.value.status, refused.value.code) == (400, "client_disconnected")


@pytest.mark.parametrize(
    "messages",
    [
        [{"type": "http.request", "body": b"x" * 11}],
        [{"type": "http.request", "body": b"x" * 11, "more_body": True}],
        [{"type": "http.request", "body": b"x" * 6, "more_body": True},
         {"type": "http.request", "body": b"x" * 5}],
    ],
    ids=["whole", "first-chunk", "summed"],
)
def test_over_the_cap_is_refused_with_413(messages: list[dict[str, Any]]) -> None:
    with pytest.raises(Refused) as refused:
        _read(*messages)
    assert (refused.value.status, refused.value.code) == (413, "body_too_large")
