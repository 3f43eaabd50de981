"""Limits on a real `hookwatch serve`, over raw sockets: body size, head size, slow clients.

Each refusal must be a 4xx and a closed connection, never a 500 and never a hang; the service
answers normally afterwards.
"""

from __future__ import annotations

import contextlib
import socket
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.conftest import SECRET, TOKEN
from tests.reliability.helpers import Serve

BODY_TIMEOUT = 1.0
MAX_BODY = 4096
# Authenticated: what the headers can refuse is refused before the body (hooks.route), so the
# body limits below are reached only by a sender whose headers pass.
HEAD = (b"POST /hooks/replicate HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
        b"Authorization: Bearer " + TOKEN.encode() + b"\r\n")

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def serve(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Serve]:
    workdir: Path = tmp_path_factory.mktemp("limits")
    server = Serve(workdir, {
        "HOOKWATCH_DATABASE_URL": f"sqlite:///{workdir}/limits.db",
        "HOOKWATCH_WEBHOOK_SECRETS": SECRET,
        "HOOKWATCH_INGEST_TOKEN": TOKEN,
        "HOOKWATCH_BODY_TIMEOUT": str(BODY_TIMEOUT),
        "HOOKWATCH_MAX_BODY_BYTES": str(MAX_BODY),
    }, "--log-level", "warning")
    try:
        yield server.start()
    finally:
        server.kill()
    assert "Traceback" not in server.log_text()


def connect(serve: Serve) -> socket.socket:
    sock = socket.create_connection(("127.0.0.1", serve.port), timeout=10)
    return sock


def read_all(sock: socket.socket, timeout: float = 10.0) -> bytes:
    """Everything until the server closes (a refusal must close), or the timeout."""
    sock.settimeout(timeout)
    data = b""
    try:
        while chunk := sock.recv(65536):
            data += chunk
    except (TimeoutError, ConnectionResetError):
        pass
    return data


def read_response(sock: socket.socket, buffer: bytearray, timeout: float = 10.0) -> bytes:
    """One whole response (head and Content-Length body) from a kept-alive connection; what
    arrives beyond it stays in buffer for the next call."""
    sock.settimeout(timeout)
    while True:
        head_end = buffer.find(b"\r\n\r\n")
        if head_end >= 0:
            head = bytes(buffer[:head_end]).lower()
            length = 0
            for line in head.split(b"\r\n"):
                if line.startswith(b"content-length:"):
                    length = int(line.split(b":", 1)[1])
            end = head_end + 4 + length
            if len(buffer) >= end:
                response = bytes(buffer[:end])
                del buffer[:end]
                return response
        try:
            chunk = sock.recv(65536)
        except ConnectionResetError:  # closed with our bytes unread: what came before is all
            chunk = b""
        if not chunk:
            return bytes(buffer)
        buffer += chunk


def status_of(response: bytes) -> int:
    assert response.startswith(b"HTTP/1.1 "), response[:200]
    return int(response[9:12])


def still_up(serve: Serve) -> None:
    assert httpx.get(serve.url + "/healthz", timeout=5).status_code == 200


def test_declared_body_over_the_cap_is_refused_before_it_is_sent(serve: Serve) -> None:
    with connect(serve) as sock:
        sock.sendall(HEAD + b"Content-Length: 104857600\r\n\r\n" + b"{" * 100)
        response = read_all(sock)
    assert status_of(response) == 413
    assert b'"body_too_large"' in response
    still_up(serve)


@pytest.mark.parametrize("pause", [0.0, 0.05])  # all in one read, or read by read
def test_chunked_body_is_cut_at_the_cap_without_reading_the_rest(
    serve: Serve, pause: float
) -> None:
    """413 arrives while the sender still holds the end of its body back."""
    with connect(serve) as sock:
        sock.sendall(HEAD + b"Transfer-Encoding: chunked\r\n\r\n")
        chunk = b"a" * 1024
        chunks = [b"%x\r\n%s\r\n" % (len(chunk), chunk)] * (MAX_BODY // len(chunk) + 1)
        if pause:
            for part in chunks:
                sock.sendall(part)
                time.sleep(pause)
        else:
            sock.sendall(b"".join(chunks))
        began = time.monotonic()
        response = read_all(sock, timeout=5)
        waited = time.monotonic() - began
    assert status_of(response) == 413
    assert waited < BODY_TIMEOUT  # not a timeout: refused as soon as the cap was passed
    still_up(serve)


def trickle(sock: socket.socket, piece: bytes) -> tuple[bytes, float]:
    """Send piece again and again until the server answers or closes; (answer, seconds)."""
    began = time.monotonic()
    sock.settimeout(0.1)
    response = b""
    while time.monotonic() - began < 4 * BODY_TIMEOUT:
        try:
            sock.sendall(piece)
            response += sock.recv(65536)
            if response:
                break
        except TimeoutError:
            pass
        except OSError:
            break
    response += read_all(sock, timeout=2)
    return response, time.monotonic() - began


def test_trickled_body_is_cut_off_with_408(serve: Serve) -> None:
    with connect(serve) as sock:
        sock.sendall(HEAD + b"Content-Length: 1000\r\n\r\n")
        response, elapsed = trickle(sock, b" ")
    assert status_of(response) == 408
    assert b'"body_timeout"' in response
    assert elapsed < 3 * BODY_TIMEOUT
    still_up(serve)
    # The server's deadline cut it, and the receiver still counted it as a body timeout.
    metrics = httpx.get(serve.url + "/metrics", timeout=5).text
    assert 'hookwatch_webhooks_received_total{result="body_timeout"}' in metrics


def test_body_that_never_starts_is_cut_off_with_408(serve: Serve) -> None:
    with connect(serve) as sock:
        sock.sendall(HEAD + b"Content-Length: 10\r\n\r\n")
        began = time.monotonic()
        response = read_all(sock, timeout=4 * BODY_TIMEOUT)
        elapsed = time.monotonic() - began
    assert status_of(response) == 408
    assert elapsed < 3 * BODY_TIMEOUT


@pytest.mark.parametrize("head", [
    b"X-Big: " + b"a" * 1_000_000 + b"\r\n",  # one huge header
    b"".join(b"X-H%d: v\r\n" % i for i in range(20_000)),  # very many small ones
    b"X-Big: " + b"a" * 70_000 + b"\r\n",  # just over the limit, in one read
])
def test_oversized_request_head_is_refused_with_431(serve: Serve, head: bytes) -> None:
    with connect(serve) as sock:
        # The server may close while we are still sending: that is the point.
        with contextlib.suppress(BrokenPipeError, ConnectionResetError):
            sock.sendall(HEAD + head + b"Content-Length: 2\r\n\r\n{}")
        response = read_all(sock)
    assert status_of(response) == 431
    assert b"connection: close" in response.lower()
    still_up(serve)


def test_head_under_the_limit_is_served(serve: Serve) -> None:
    with connect(serve) as sock:
        sock.sendall(HEAD + b"X-Big: " + b"a" * 30_000 + b"\r\nContent-Length: 2\r\n"
                     b"Connection: close\r\n\r\n{}")
        response = read_all(sock)
    assert status_of(response) == 422  # reached the route: authenticated, not a prediction


def test_trickled_head_is_cut_off_with_408(serve: Serve) -> None:
    """Slowloris: a head sent a byte at a time never completes; the connection is closed."""
    with connect(serve) as sock:
        sock.sendall(b"POST /hooks/replicate HTTP/1.1\r\nHost: x\r\n")
        response, elapsed = trickle(sock, b"X-a: b\r\n")
    assert status_of(response) == 408
    assert elapsed < 3 * BODY_TIMEOUT
    still_up(serve)


def test_silent_connection_is_closed(serve: Serve) -> None:
    with connect(serve) as sock:
        began = time.monotonic()
        response = read_all(sock, timeout=4 * BODY_TIMEOUT)
        elapsed = time.monotonic() - began
    assert status_of(response) == 408
    assert elapsed < 3 * BODY_TIMEOUT


def test_an_idle_kept_alive_connection_is_not_timed_out_by_its_last_request(
    serve: Serve,
) -> None:
    """Each request has its own deadline, from its first byte: the time a connection waits
    between requests is not counted against the next one."""
    request = (b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
    buffer = bytearray()
    with connect(serve) as sock:
        sock.sendall(request)
        first = read_response(sock, buffer)
        time.sleep(2 * BODY_TIMEOUT)  # well past one request's deadline, within keep-alive
        sock.sendall(request)
        second = read_response(sock, buffer)
    assert status_of(first) == 200 and status_of(second) == 200


def test_a_pipelined_request_has_its_own_deadline(serve: Serve) -> None:
    """A second request sent in the same packet as the first, whose body never comes, is
    cut off like any other: 408 after the first one's 200, then the connection closes."""
    buffer = bytearray()
    with connect(serve) as sock:
        sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n" + HEAD
                     + b"Content-Length: 10\r\n\r\n")
        began = time.monotonic()
        first = read_response(sock, buffer)
        second = read_response(sock, buffer, timeout=4 * BODY_TIMEOUT)
        elapsed = time.monotonic() - began
    assert status_of(first) == 200
    assert status_of(second) == 408 and b'"body_timeout"' in second
    assert elapsed < 3 * BODY_TIMEOUT


def test_a_trickled_head_after_a_served_request_gets_408(serve: Serve) -> None:
    buffer = bytearray()
    with connect(serve) as sock:
        sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
        first = read_response(sock, buffer)
        sock.sendall(b"POST /hooks/replicate HTTP/1.1\r\nHost: x\r\n")  # and no more
        second = read_response(sock, buffer, timeout=4 * BODY_TIMEOUT)
    assert status_of(first) == 200
    assert status_of(second) == 408 and b'"header_timeout"' in second


def test_a_pipelined_oversized_head_is_not_served(serve: Serve) -> None:
    """Its bytes arrive in the read that ended the first request, before the count restarts:
    the head is measured exactly. It is never served, and its refusal never reads as the
    answer to the first request: while that answer is owed, the connection just closes."""
    buffer = bytearray()
    with connect(serve) as sock:
        with contextlib.suppress(BrokenPipeError, ConnectionResetError):
            sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n"
                         + b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Big: "
                         + b"a" * 150_000 + b"\r\n\r\n")
        first = read_response(sock, buffer)
        rest = read_all(sock)
    if first:
        assert status_of(first) == 200
        assert not rest or status_of(rest) == 431
    else:
        assert not rest
    still_up(serve)


def test_websocket_upgrades_are_not_taken(serve: Serve) -> None:
    buffer = bytearray()
    with connect(serve) as sock:
        sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: Upgrade\r\n"
                     b"Upgrade: websocket\r\nSec-WebSocket-Version: 13\r\n"
                     b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n")
        response = read_response(sock, buffer)
    assert status_of(response) == 200  # served as plain HTTP, never handed to a websocket


def test_keep_alive_requests_still_work(serve: Serve) -> None:
    """The head limits reset per request on one connection."""
    with httpx.Client(base_url=serve.url) as client:
        for _ in range(5):
            assert client.get("/healthz", headers={"x-pad": "a" * 40_000}).status_code == 200
