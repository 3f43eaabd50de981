"""The HTTP client every HTTP channel shares: one deadline for a whole exchange, answers read
only up to a few KiB, in-flight requests abortable; and how a failed answer reads.

httpx's timeouts apply to each socket operation: a receiver that answers one byte at a time
(each byte before the read timeout) would hold a request, and its channel, forever. Here the
network backend gives every read and write what is left of the exchange's deadline instead.
"""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterable, Iterator
from contextlib import contextmanager, suppress
from typing import Any

import httpcore
import httpx

from hookwatch.notifiers.base import (
    NotifyError,
    parse_retry_after,
    response_detail,
    retryable_status,
)

USER_AGENT = "hookwatch"
# Nothing hookwatch reads from a vendor's answer (an ok flag, a ts, an error code) is longer;
# the rest is never read, so a 50 MB answer costs 4 KiB.
MAX_ANSWER_BYTES = 4096


class Deadline:
    """The current exchange's deadline (monotonic seconds) per thread, and its open sockets."""

    def __init__(self) -> None:
        self._local = threading.local()
        self._sockets: set[socket.socket] = set()
        self._lock = threading.Lock()
        self.aborted = False

    @contextmanager
    def exchange(self, seconds: float) -> Iterator[None]:
        self._local.at = time.monotonic() + seconds
        try:
            yield
        finally:
            self._local.at = None

    def left(self, timeout: float | None, error: type[Exception]) -> float | None:
        """The timeout for one socket operation: never past the deadline."""
        if self.aborted:
            raise error("the delivery worker is stopping")
        at = getattr(self._local, "at", None)
        if at is None:
            return timeout
        left = at - time.monotonic()
        if left <= 0:
            raise error("the whole exchange took longer than its deadline")
        return left if timeout is None else min(timeout, left)

    def opened(self, sock: socket.socket) -> None:
        with self._lock:
            self._sockets.add(sock)

    def closed(self, sock: socket.socket) -> None:
        with self._lock:
            self._sockets.discard(sock)

    def abort(self) -> None:
        """Stop every request in flight now (service shutdown): a blocked recv returns."""
        self.aborted = True
        with self._lock:
            sockets = list(self._sockets)
        for sock in sockets:
            with suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)


class _Stream(httpcore.NetworkStream):
    def __init__(self, inner: httpcore.NetworkStream, deadline: Deadline) -> None:
        self._inner = inner
        self._deadline = deadline
        self._sock: socket.socket | None = inner.get_extra_info("socket")
        if self._sock is not None:
            deadline.opened(self._sock)

    def read(self, max_bytes: int, timeout: float | None = None) -> bytes:
        return self._inner.read(max_bytes, self._deadline.left(timeout, httpcore.ReadTimeout))

    def write(self, buffer: bytes, timeout: float | None = None) -> None:
        self._inner.write(buffer, self._deadline.left(timeout, httpcore.WriteTimeout))

    def close(self) -> None:
        if self._sock is not None:
            self._deadline.closed(self._sock)
        self._inner.close()

    def start_tls(self, ssl_context: Any, server_hostname: str | None = None,
                  timeout: float | None = None) -> httpcore.NetworkStream:
        if self._sock is not None:
            self._deadline.closed(self._sock)
        inner = self._inner.start_tls(ssl_context, server_hostname,
                                      self._deadline.left(timeout, httpcore.ConnectTimeout))
        return _Stream(inner, self._deadline)

    def get_extra_info(self, info: str) -> Any:
        return self._inner.get_extra_info(info)


class _Backend(httpcore.SyncBackend):
    def __init__(self, deadline: Deadline) -> None:
        self._deadline = deadline

    def connect_tcp(self, host: str, port: int, timeout: float | None = None,
                    local_address: str | None = None,
                    socket_options: Iterable[Any] | None = None) -> httpcore.NetworkStream:
        timeout = self._deadline.left(timeout, httpcore.ConnectTimeout)
        inner = super().connect_tcp(host, port, timeout, local_address, socket_options)
        return _Stream(inner, self._deadline)


def _transport(deadline: Deadline) -> httpx.HTTPTransport:
    """httpx's own transport, its connection pool on the deadline backend (httpx offers no
    public hook for the network backend; `_pool` is what HTTPTransport.__init__ builds)."""
    transport = httpx.HTTPTransport()
    transport._pool = httpcore.ConnectionPool(
        ssl_context=httpx.create_ssl_context(), network_backend=_Backend(deadline),
        max_connections=10, max_keepalive_connections=5, keepalive_expiry=5.0,
    )
    return transport


class HttpClient:
    """One channel's client: `post` runs one exchange within `timeout` seconds, in all."""

    def __init__(self, timeout: float, transport: httpx.BaseTransport | None = None) -> None:
        self.timeout = timeout
        self.deadline = Deadline()
        # Redirects are not followed: a 3xx is an answer to report, never a reason to send an
        # alert (and, for webhooks, its signed body) somewhere else.
        self.client = httpx.Client(
            timeout=timeout, transport=transport or _transport(self.deadline),
            follow_redirects=False, headers={"user-agent": USER_AGENT},
        )

    def post(self, url: str | httpx.URL, *, who: str, **kwargs: Any) -> httpx.Response:
        return self.request("POST", url, who=who, **kwargs)

    def request(self, method: str, url: str | httpx.URL, *, who: str,
                **kwargs: Any) -> httpx.Response:
        """One exchange; a timeout or a failed connection to `who` is a retryable NotifyError.
        The answer holds at most MAX_ANSWER_BYTES of the body."""
        try:
            with self.deadline.exchange(self.timeout), \
                    self.client.stream(method, url, **kwargs) as response:
                body = _read_capped(response)
                return httpx.Response(response.status_code, headers=response.headers,
                                      content=body, request=response.request)
        except httpx.TimeoutException:
            raise NotifyError(f"{who} did not answer in time ({self.timeout:g} s for the whole "
                              "exchange)", retryable=True) from None
        except httpx.HTTPError as exc:
            raise NotifyError(f"cannot reach {who}: {type(exc).__name__}: {exc}",
                              retryable=True) from None

    def abort(self) -> None:
        self.deadline.abort()

    def close(self) -> None:
        self.client.close()


def _read_capped(response: httpx.Response) -> bytes:
    """The first MAX_ANSWER_BYTES of the body; leaving the stream early closes the connection
    instead of reading (or buffering) the rest."""
    body = bytearray()
    for chunk in response.iter_bytes():
        body += chunk
        if len(body) >= MAX_ANSWER_BYTES:
            break
    return bytes(body[:MAX_ANSWER_BYTES])


def make_client(timeout: float, transport: httpx.BaseTransport | None = None) -> HttpClient:
    return HttpClient(timeout, transport)


def post(client: HttpClient, url: str | httpx.URL, *, who: str, **kwargs: Any
         ) -> httpx.Response:
    """client.post (the channels' shared spelling)."""
    return client.request("POST", url, who=who, **kwargs)


def request(client: HttpClient, method: str, url: str | httpx.URL, *, who: str,
            **kwargs: Any) -> httpx.Response:
    """client.request, with post()'s errors and deadline (Discord edits a message with PATCH)."""
    return client.request(method, url, who=who, **kwargs)


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
