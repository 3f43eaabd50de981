"""The access guard's cost per request (dashboard/guard.py), on a bare inner ASGI app.

    .venv/bin/python bench/bench_guard.py --requests 20000

Prints microseconds per request for: open mode GET, private GET by bearer, private GET by
cookie, and an open-mode form POST (Origin check, body buffered, CSRF verified).
"""

from __future__ import annotations

import argparse
import asyncio
import time
from typing import Any

from hookwatch.dashboard.auth import Gate
from hookwatch.dashboard.csrf import Csrf
from hookwatch.dashboard.guard import Guard
from hookwatch.dashboard.policy import Access
from hookwatch.dashboard.ratelimit import SignInLimiter

TOKEN = "bench-dashboard-token-0123456789"


async def inner(_scope: Any, _receive: Any, send: Any) -> None:
    await send({"type": "http.response.start", "status": 200, "headers": []})
    await send({"type": "http.response.body", "body": b"ok"})


def guard(access: Access) -> tuple[Guard, Csrf, Gate | None]:
    csrf = Csrf(access.admin_token)
    gate = None if access.is_open else Gate(access)
    return Guard(inner, access=access, gate=gate, clock=time.time, limiter=SignInLimiter(),
                 csrf=csrf, render=lambda *_a: ""), csrf, gate


def scope(method: str, headers: list[tuple[bytes, bytes]]) -> dict[str, Any]:
    return {"type": "http", "method": method, "path": "/alerts/1/ack" if method == "POST"
            else "/api/status", "query_string": b"", "client": ("127.0.0.1", 5000),
            "headers": [(b"host", b"127.0.0.1:8000"), *headers]}


async def run(app: Guard, request: dict[str, Any], body: bytes, n: int) -> float:
    statuses: list[int] = []

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": body, "more_body": False}

    async def send(message: dict[str, Any]) -> None:
        if message["type"] == "http.response.start":
            statuses.append(message["status"])

    began = time.perf_counter()
    for _ in range(n):
        await app(request, receive, send)
    elapsed = time.perf_counter() - began
    assert set(statuses) == {200}, set(statuses)
    return elapsed / n * 1e6


async def main(n: int) -> None:
    open_guard, open_csrf, _ = guard(Access())
    private, _, gate = guard(Access(admin_token=TOKEN))
    assert gate is not None
    token = open_csrf.issue(now=time.time())
    form = f"by=ana&comment=x&csrf={token}".encode()
    cases = [
        ("open GET /api/status", open_guard, scope("GET", []), b""),
        ("private GET, bearer", private,
         scope("GET", [(b"authorization", f"Bearer {TOKEN}".encode())]), b""),
        ("private GET, cookie", private,
         scope("GET", [(b"cookie", f"hookwatch_session={gate.cookie_value('admin')}".encode())]),
         b""),
        ("open form POST (Origin + CSRF)", open_guard, scope("POST", [
            (b"origin", b"http://127.0.0.1:8000"),
            (b"content-type", b"application/x-www-form-urlencoded")]), form),
    ]
    for name, app, request, body in cases:
        await run(app, request, body, n // 10)  # warm up
        print(f"  {name:34} {await run(app, request, body, n):6.1f} µs per request")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=20000)
    asyncio.run(main(parser.parse_args().requests))
