"""Request limits for uvicorn's httptools protocol: head size (431) and arrival time (408).

uvicorn serves HTTP/1.1 with httptools when it is installed (uvicorn[standard]), and then
`h11_max_incomplete_event_size` does not apply: a request head of any size is buffered, and no
timer runs until the head is complete (`timeout_keep_alive` starts after a response). One client
could hold memory without bound, or hold connections open by trickling a request (slowloris).

This subclass counts head bytes, and gives each request one deadline from its first byte to its
last, head and body together. Deadlines are checked by one sweep per event loop, a few times per
timeout, rather than by a timer per request: arming and cancelling two timers per webhook cost
about a tenth of the hot path's CPU (bench/README.md). The app learns through the scope's
`extensions` that the server keeps the deadline, so it arms none of its own (hooks.route).
It also hands uvicorn a transport that sends a response's head and body in one write
(hooks.coalesce).
"""

from __future__ import annotations

import asyncio
from typing import ClassVar

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from hookwatch.hooks.coalesce import CoalescingTransport

MAX_HEAD_BYTES = 64 * 1024
REQUEST_TIMEOUT = 10.0
DEADLINE = "hookwatch.request_deadline"
"""The scope["extensions"] key under which the server hands the app a RequestDeadline."""


class HeadTooLarge(Exception):
    """Raised inside a parser callback to stop httptools; uvicorn then calls send_400_response."""


class RequestDeadline:
    """Told to the app: the server times this request out; `expired` once it has."""

    __slots__ = ("expired",)

    def __init__(self) -> None:
        self.expired = False


_HEAD_TIMEOUT = (b"header_timeout", b"the request head did not arrive in time")
_BODY_TIMEOUT = (b"body_timeout", b"the body did not arrive in time")


class LimitedHttpToolsProtocol(HttpToolsProtocol):
    max_head_bytes = MAX_HEAD_BYTES
    request_timeout = REQUEST_TIMEOUT
    _watched: ClassVar[dict[asyncio.AbstractEventLoop, set[LimitedHttpToolsProtocol]]] = {}

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        self._in_head = True
        self._head_bytes = 0  # raw bytes received since this head began (body bytes too)
        self._refusal: tuple[int, bytes] | None = None
        self._request: RequestDeadline | None = None
        self._completed_this_read = False  # a request ended inside the current read
        self._exact_head = False  # this head began mid-read, after bytes the count reset past
        # A response's head and body in one send (hooks.coalesce).
        super().connection_made(CoalescingTransport(transport, self.loop))  # type: ignore[arg-type]
        # A connection that never sends a byte is timed from its opening.
        self._deadline: float | None = self.loop.time() + self.request_timeout
        self._watch()

    def connection_lost(self, exc: Exception | None) -> None:
        watched = self._watched.get(self.loop)
        if watched is not None:
            watched.discard(self)
        super().connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        if self._in_head:
            self._head_bytes += len(data)
            if self._deadline is None:  # the first byte of a request on a kept-alive connection
                self._deadline = self.loop.time() + self.request_timeout
        self._completed_this_read = False
        super().data_received(data)
        # Still no complete head after this much: refuse before buffering more of it.
        if self._in_head and self._head_bytes > self.max_head_bytes and self._refusal is None:
            self._refuse(431, b"Request Header Fields Too Large")

    def on_message_begin(self) -> None:
        super().on_message_begin()
        if self._deadline is None:  # pipelined: it began in the read that ended the last one
            self._deadline = self.loop.time() + self.request_timeout
        self._exact_head = self._completed_this_read
        self._request = RequestDeadline()
        extensions: dict[str, object] = self.scope.setdefault("extensions", {})  # type: ignore[assignment]
        extensions[DEADLINE] = self._request

    def on_headers_complete(self) -> None:
        # Measured exactly only when the raw bytes say it might be over: the hot path pays one
        # comparison, not a callback per header.
        if (
            self._head_bytes > self.max_head_bytes or self._exact_head
        ) and self._head_size() > self.max_head_bytes:
            self._refusal = (431, b"Request Header Fields Too Large")
            raise HeadTooLarge  # httptools stops; uvicorn answers through send_400_response
        self._in_head = False
        super().on_headers_complete()

    def on_message_complete(self) -> None:
        super().on_message_complete()
        self._deadline = None  # all of it arrived; the next request's clock starts with its byte
        self._in_head = True
        self._head_bytes = 0
        self._completed_this_read = True

    def send_400_response(self, msg: str) -> None:
        if self._refusal is not None:
            status, reason = self._refusal
            self._refusal = None
            self._refuse(status, reason)
            return
        super().send_400_response(msg)

    def _head_size(self) -> int:
        """The request line's target and the header lines, as parsed."""
        return len(self.url) + sum(len(name) + len(value) + 4 for name, value in self.headers)

    def _answering_earlier(self) -> bool:
        """An earlier request on this connection still waits for its answer (pipelining)."""
        if self.pipeline:
            return True
        cycle = self.cycle
        return self._in_head and cycle is not None and not cycle.response_complete

    def _expire(self) -> None:
        if self._answering_earlier():
            # The server is behind, not the client (uvicorn stops reading while a queued
            # request waits): this request's time starts again once the earlier answer is out.
            self._deadline = self.loop.time() + self.request_timeout
            return
        if self._in_head:
            self._refuse(408, b"Request Timeout", _HEAD_TIMEOUT)
            return
        cycle = self.cycle  # this request's
        if cycle is not None and cycle.response_started:
            self.transport.close()  # the app answered already; it only waits for the rest
            return
        if self._request is not None:
            self._request.expired = True  # the app, waiting for the body, sees a disconnect
        self._refuse(408, b"Request Timeout", _BODY_TIMEOUT)

    def _refuse(
        self, status: int, reason: bytes, error: tuple[bytes, bytes] | None = None
    ) -> None:
        self._refusal = (status, reason)
        self._deadline = None
        if self.transport.is_closing():
            return
        if self._answering_earlier():
            # Answers go out in request order: a refusal written now would read as the answer
            # to the earlier request, which may have been committed. Close without one.
            self.transport.close()
            return
        code, detail = error or (b"headers_too_large",
                                 b"the request head is over %d bytes" % self.max_head_bytes)
        body = b'{"error":"%s","detail":"%s"}' % (code, detail)
        self.transport.write(
            b"HTTP/1.1 %d %s\r\ncontent-type: application/json\r\ncontent-length: %d\r\n"
            b"connection: close\r\n\r\n%s" % (status, reason, len(body), body)
        )
        self.transport.close()

    def _watch(self) -> None:
        # A loop has an entry exactly while its sweep runs: the first connection starts it.
        watched = self._watched.get(self.loop)
        if watched is None:
            watched = self._watched[self.loop] = set()
            self.loop.call_later(self._sweep_every(), self._sweep, self.loop)
        watched.add(self)

    @classmethod
    def _sweep(cls, loop: asyncio.AbstractEventLoop) -> None:
        watched = cls._watched.get(loop, set())
        now = loop.time()
        try:
            for conn in [c for c in watched if c._deadline is not None and c._deadline <= now]:
                conn._expire()
        finally:  # one connection's failure must not end the sweep for all the others
            if watched:
                loop.call_later(cls._sweep_every(), cls._sweep, loop)
            else:
                cls._watched.pop(loop, None)  # the next connection starts a new sweep

    @classmethod
    def _sweep_every(cls) -> float:
        """A request is cut off at most a quarter of its timeout late."""
        return min(1.0, cls.request_timeout / 4)

    @classmethod
    def configured(
        cls, *, request_timeout: float = REQUEST_TIMEOUT, max_head_bytes: int = MAX_HEAD_BYTES
    ) -> type[LimitedHttpToolsProtocol]:
        """A subclass with these limits, to pass as uvicorn's `http`."""
        return type(cls.__name__, (cls,), {
            "request_timeout": request_timeout, "max_head_bytes": max_head_bytes, "_watched": {},
        })
