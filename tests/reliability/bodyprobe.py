"""The slow-body probe: many connections to a real `hookwatch serve`, each declaring a body just
under the 1 MiB cap and trickling it in within the request deadline; the web process's
resident memory before, at its peak and after, and what each connection was answered.

Shared by tests/reliability/test_slow_bodies.py (assertions, fewer connections) and
bench/bench_slow_bodies.py (400 connections, figures).
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import threading
import time
import uuid
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import httpx

from tests.conftest import SECRET, TOKEN
from tests.reliability.helpers import Serve

BODY = 1024 * 1024 - 1024  # just under max_body_bytes
KINDS = ("none", "bad-token", "stale", "forged")
"""How each connection authenticates: no credentials; a wrong bearer token; a signature whose
timestamp is an hour old; a well-formed signature with a fresh timestamp that matches nothing
(only this one can be refused no sooner than its body has arrived)."""


def rss(pid: int) -> int:
    """Resident bytes of one process (/proc/PID/status VmRSS)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    raise RuntimeError(f"no VmRSS for {pid}")


def head(kind: str, port: int, length: int) -> bytes:
    lines = ["POST /hooks/replicate HTTP/1.1", f"host: 127.0.0.1:{port}",
             "content-type: application/json", f"content-length: {length}"]
    now = int(time.time())
    fake = "v1," + base64.b64encode(b"\0" * 32).decode()
    if kind == "bad-token":
        lines.append("authorization: Bearer not-the-token")
    elif kind == "stale":
        lines += [f"webhook-id: msg_{uuid.uuid4().hex}", f"webhook-timestamp: {now - 3600}",
                  f"webhook-signature: {fake}"]
    elif kind == "forged":
        lines += [f"webhook-id: msg_{uuid.uuid4().hex}", f"webhook-timestamp: {now}",
                  f"webhook-signature: {fake}"]
    return ("\r\n".join(lines) + "\r\n\r\n").encode()


@dataclass
class BodyFigures:
    kind: str
    connections: int
    before: int = 0
    peak: int = 0
    after: int = 0
    answers: Counter[str] = field(default_factory=Counter)  # "401 missing_credentials", ...
    slowest: float = 0.0  # seconds from a connection's head to its answer

    def summary(self) -> str:
        mib = 1024 * 1024
        return (f"{self.kind:>9}: {self.connections} connections  RSS before "
                f"{self.before / mib:.0f} MiB, peak {self.peak / mib:.0f} MiB, after "
                f"{self.after / mib:.0f} MiB; slowest answer {self.slowest:.2f} s; "
                f"{dict(sorted(self.answers.items()))}")


async def _one(port: int, kind: str, trickle: float, chunk: int) -> tuple[str, float]:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    began = time.monotonic()
    answer = asyncio.create_task(reader.read(4096))
    try:
        writer.write(head(kind, port, BODY))
        sent = 0
        pause = trickle / max(1, BODY // chunk)
        while sent < BODY and not answer.done():
            piece = min(chunk, BODY - sent)
            writer.write(b"x" * piece)
            sent += piece
            try:
                await writer.drain()
            except ConnectionError:
                break
            await asyncio.sleep(pause)
        data = b""
        try:
            data = await asyncio.wait_for(answer, 30)
            while data and b"}" not in data:  # the JSON body may come in a packet of its own
                more = await asyncio.wait_for(reader.read(4096), 10)
                if not more:
                    break
                data += more
        except (ConnectionError, TimeoutError):
            pass  # what arrived before the reset or the wait ran out is the answer
        took = time.monotonic() - began
    finally:
        writer.close()
        with contextlib.suppress(ConnectionError):
            await writer.wait_closed()
    if not data:
        return "no answer", took
    status = data.split(b" ", 2)[1].decode()
    error = b""
    if b'"error":"' in data:
        error = data.split(b'"error":"', 1)[1].split(b'"', 1)[0]
    return f"{status} {error.decode()}".strip(), took


async def _attack(port: int, kind: str, connections: int, trickle: float,
                  chunk: int) -> list[tuple[str, float]]:
    return await asyncio.gather(*(_one(port, kind, trickle, chunk) for _ in range(connections)))


def run_body_probe(
    workdir: Path, kind: str, connections: int, *, trickle: float = 5.0, chunk: int = 64 * 1024,
    env: dict[str, str] | None = None,
) -> BodyFigures:
    serve = Serve(workdir, {
        "HOOKWATCH_DATABASE_URL": f"sqlite:///{workdir / 'hookwatch.db'}",
        "HOOKWATCH_INGEST_TOKEN": TOKEN,
        "HOOKWATCH_WEBHOOK_SECRETS": SECRET,
        **(env or {}),
    })
    figures = BodyFigures(kind, connections)
    serve.start()
    try:
        assert serve.proc is not None
        pid = serve.proc.pid
        with httpx.Client() as client:  # warm the path once
            client.post(serve.url + "/hooks/replicate", content=b'{"id":"warm","status":"succeeded"}',
                        headers={"content-type": "application/json",
                                 "authorization": f"Bearer {TOKEN}"})
        time.sleep(0.5)
        figures.before = rss(pid)
        stop = threading.Event()
        peak = [figures.before]

        def sample() -> None:
            while not stop.is_set():
                peak[0] = max(peak[0], rss(pid))
                stop.wait(0.05)

        sampler = threading.Thread(target=sample, daemon=True)
        sampler.start()
        try:
            results = asyncio.run(_attack(serve.port, kind, connections, trickle, chunk))
        finally:
            stop.set()
            sampler.join()
        figures.peak = peak[0]
        time.sleep(2.0)
        figures.after = rss(pid)
        figures.answers = Counter(r for r, _ in results)
        figures.slowest = max(t for _, t in results)
    finally:
        serve.stop()
    return figures
