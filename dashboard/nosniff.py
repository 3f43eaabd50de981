"""X-Content-Type-Options: nosniff on every response FastAPI answers.

A browser that sniffs may run text it was told is JSON or Prometheus text as HTML; /metrics
and the JSON API carry sender-controlled names. https://fetch.spec.whatwg.org/#x-content-type-options-header
The webhook path answers outside FastAPI and sets it itself (hooks.route).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

Message = MutableMapping[str, Any]
ASGIApp = Callable[[MutableMapping[str, Any], Callable[[], Awaitable[Message]],
                    Callable[[Message], Awaitable[None]]], Awaitable[None]]

HEADER = (b"x-content-type-options", b"nosniff")


class NoSniff:
    """Pure ASGI (no Request objects): adds the header unless the response has it."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(
        self, scope: MutableMapping[str, Any], receive: Callable[[], Awaitable[Message]],
        send: Callable[[Message], Awaitable[None]],
    ) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def with_header(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = list(message.get("headers", []))
                if not any(name.lower() == HEADER[0] for name, _ in headers):
                    headers.append(HEADER)
                message["headers"] = headers
            await send(message)

        await self.app(scope, receive, with_header)
