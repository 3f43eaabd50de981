"""Request-head limits for uvicorn's httptools protocol: size (431) and time (408).

uvicorn serves HTTP/1.1 with httptools when it is installed (uvicorn[standard]), and then
`h11_max_incomplete_event_size` does not apply: a request head of any size is buffered, and no
timer runs until the head is complete (`timeout_keep_alive` starts after a response). One client
could hold memory without bound, or hold connections open by trickling a head (slowloris).
This subclass counts head bytes and arms a timer from a head's first byte; past either limit it
answers 431 or 408 and closes. Bodies have their own limits in hooks.route (size, time).
"""

from __future__ import annotations

import asyncio

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

MAX_HEAD_BYTES = 64 * 1024
HEAD_TIMEOUT = 10.0


class HeadTooLarge(Exception):
    """Raised inside a parser callback to stop httptools; uvicorn then calls send_400_response."""


class LimitedHttpToolsProtocol(HttpToolsProtocol):
    max_head_bytes = MAX_HEAD_BYTES
    head_timeout = HEAD_TIMEOUT

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        self._in_head = True
        self._head_bytes = 0  # raw bytes received since this head began (body bytes too)
        self._refusal: tuple[int, bytes] | None = None
        self._head_timer: asyncio.TimerHandle | None = None
        super().connection_made(transport)
        self._arm_head_timer()

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm_head_timer()
        super().connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        if self._in_head:
            self._head_bytes += len(data)
            self._arm_head_timer()
        super().data_received(data)
        # Still no complete head after this much: refuse before buffering more of it.
        if self._in_head and self._head_bytes > self.max_head_bytes and self._refusal is None:
            self._refuse(431, b"Request Header Fields Too Large")

    def on_headers_complete(self) -> None:
        # Measured exactly only when the raw bytes say it might be over: the hot path pays one
        # comparison, not a callback per header.
        if self._head_bytes > self.max_head_bytes and self._head_size() > self.max_head_bytes:
            self._refusal = (431, b"Request Header Fields Too Large")
            raise HeadTooLarge  # httptools stops; uvicorn answers through send_400_response
        self._in_head = False
        self._disarm_head_timer()
        super().on_headers_complete()

    def on_message_complete(self) -> None:
        super().on_message_complete()
        self._in_head = True  # the next request's head; its timer starts with its first byte
        self._head_bytes = 0

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

    def _refuse(self, status: int, reason: bytes) -> None:
        self._refusal = (status, reason)
        self._disarm_head_timer()
        if self.transport.is_closing():
            return
        body = b'{"error":"%s","detail":"%s"}' % (
            b"headers_too_large" if status == 431 else b"header_timeout",
            b"the request head is over %d bytes" % self.max_head_bytes
            if status == 431
            else b"the request head did not arrive in time",
        )
        self.transport.write(
            b"HTTP/1.1 %d %s\r\ncontent-type: application/json\r\ncontent-length: %d\r\n"
            b"connection: close\r\n\r\n%s" % (status, reason, len(body), body)
        )
        self.transport.close()

    def _head_too_slow(self) -> None:
        self._head_timer = None
        if self._in_head and self._refusal is None:
            self._refuse(408, b"Request Timeout")

    @classmethod
    def configured(
        cls, *, head_timeout: float = HEAD_TIMEOUT, max_head_bytes: int = MAX_HEAD_BYTES
    ) -> type[LimitedHttpToolsProtocol]:
        """A subclass with these limits, to pass as uvicorn's `http`."""
        return type(
            cls.__name__, (cls,), {"head_timeout": head_timeout, "max_head_bytes": max_head_bytes}
        )

    def _arm_head_timer(self) -> None:
        if self._head_timer is None:
            self._head_timer = self.loop.call_later(self.head_timeout, self._head_too_slow)

    def _disarm_head_timer(self) -> None:
        if self._head_timer is not None:
            self._head_timer.cancel()
            self._head_timer = None
