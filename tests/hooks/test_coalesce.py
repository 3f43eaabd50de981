"""hooks.coalesce on a real event loop and a real socket: one send per turn, nothing held back."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import Awaitable, Callable
from typing import Any

import httpx
import pytest

from hookwatch.hooks.coalesce import JOIN_BELOW, CoalescingTransport
from tests.conftest import TOKEN
from tests.reliability.helpers import Serve


class Sends:
    """Stands between the wrapper and the socket's transport and records each write it passes on."""

    def __init__(self, transport: asyncio.Transport) -> None:
        self.transport = transport
        self.writes: list[bytes] = []

    def write(self, data: bytes) -> None:
        self.writes.append(bytes(data))
        self.transport.write(data)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.transport, name)


async def _connected(
    act: Callable[[CoalescingTransport, Sends], Awaitable[None]],
) -> tuple[list[bytes], bytes]:
    """Runs `act` on a wrapped transport over a socket pair: (writes sent, bytes the peer read)."""
    loop = asyncio.get_running_loop()
    ours, theirs = socket.socketpair()
    transport, _ = await loop.create_connection(asyncio.Protocol, sock=ours)
    sends = Sends(transport)
    wrapped = CoalescingTransport(sends, loop)  # type: ignore[arg-type]
    await act(wrapped, sends)
    await asyncio.sleep(0.05)
    theirs.setblocking(False)
    received = b""
    try:
        while chunk := theirs.recv(1 << 20):
            received += chunk
    except BlockingIOError:
        pass
    transport.close()
    theirs.close()
    return sends.writes, received


def test_writes_of_one_turn_go_out_as_one_send() -> None:
    async def act(wrapped: CoalescingTransport, sends: Sends) -> None:
        wrapped.write(b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\n")
        wrapped.write(bytearray(b"{}"))
        assert sends.writes == []  # held until the loop's next turn
        assert wrapped.get_write_buffer_size() == 40

    writes, received = asyncio.run(_connected(act))
    assert writes == [b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\n{}"]
    assert received == writes[0]


def test_each_turn_is_sent_in_order() -> None:
    async def act(wrapped: CoalescingTransport, sends: Sends) -> None:
        wrapped.write(b"one")
        await asyncio.sleep(0)
        await asyncio.sleep(0)
        wrapped.write(b"two")

    writes, received = asyncio.run(_connected(act))
    assert writes == [b"one", b"two"]
    assert received == b"onetwo"


def test_close_sends_what_was_written_first() -> None:
    async def act(wrapped: CoalescingTransport, sends: Sends) -> None:
        wrapped.write(b"last words")
        wrapped.close()
        assert sends.writes == [b"last words"]
        assert wrapped.is_closing()

    _, received = asyncio.run(_connected(act))
    assert received == b"last words"


def test_abort_drops_what_waits() -> None:
    async def act(wrapped: CoalescingTransport, sends: Sends) -> None:
        wrapped.write(b"never sent")
        wrapped.abort()

    writes, received = asyncio.run(_connected(act))
    assert writes == [] and received == b""


def test_a_large_body_is_not_copied_into_one_buffer() -> None:
    body = b"x" * (JOIN_BELOW + 1)

    async def act(wrapped: CoalescingTransport, sends: Sends) -> None:
        wrapped.write(b"head")
        wrapped.write(body)

    writes, received = asyncio.run(_connected(act))
    assert writes == [b"head", body]
    assert received == b"head" + body


@pytest.mark.slow
def test_a_real_serve_answers_each_request_in_one_piece(tmp_path: Any) -> None:
    """Under `hookwatch serve`: kept-alive requests each get their whole answer, head and body
    arriving together, and refusals (which close) still arrive whole."""
    server = Serve(tmp_path, {
        "HOOKWATCH_DATABASE_URL": f"sqlite:///{tmp_path}/coalesce.db",
        "HOOKWATCH_INGEST_TOKEN": TOKEN,
    }, "--log-level", "warning").start()
    try:
        with httpx.Client(base_url=f"http://127.0.0.1:{server.port}") as client:
            for i in range(3):
                answer = client.post("/hooks/replicate", content=b'{"id": "p%d", "status": '
                                     b'"succeeded"}' % i, headers={
                                         "authorization": f"Bearer {TOKEN}",
                                         "content-type": "application/json"})
                assert answer.status_code == 200, answer.text
                assert answer.json() == {"status": "recorded", "id": f"p{i}"}
            refused = client.post("/hooks/replicate", content=b"{}",
                                  headers={"content-type": "application/json"})
            assert refused.status_code == 401
            assert refused.json()["error"]
            assert client.get("/healthz").status_code == 200
    finally:
        server.kill()
    assert "Traceback" not in server.log_text()
