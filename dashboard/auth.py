"""Private mode: with HOOKWATCH_DASHBOARD_TOKEN set, every path but a few open ones needs it.

Accepted: `Authorization: Bearer <token>`, the session cookie, or `?token=<token>` once (a GET
for a page is then redirected to the same URL without it, with the cookie set). Everything is
compared in constant time. Closed by default: a route added later is private too. Open: the
webhook receiver (it has its own authentication), the health probes and the static files
(vendored htmx, CSS and JS: nothing private). /metrics is private as well: its labels name
models and deployments; Prometheus sends the token with `authorization: {credentials: ...}`.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import re
from collections.abc import Awaitable, Callable, MutableMapping
from http.cookies import SimpleCookie
from typing import Any
from urllib.parse import parse_qsl, urlencode

import orjson

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

COOKIE = "hookwatch_session"
COOKIE_MAX_AGE = 30 * 86400
OPEN_PATHS = frozenset({"/hooks/replicate", "/healthz", "/readyz", "/auth"})
OPEN_PREFIXES = ("/static/",)


def is_open(path: str) -> bool:
    return path in OPEN_PATHS or path.startswith(OPEN_PREFIXES)


class Gate:
    """Checks a presented token or cookie against the configured token, in constant time.

    The cookie holds an HMAC of the token, not the token: a leaked cookie does not reveal it,
    and changing the token signs everyone out.
    """

    def __init__(self, token: str) -> None:
        self._token = token.encode()
        self._cookie = hmac.new(self._token, b"hookwatch dashboard session v1", hashlib.sha256)

    @property
    def cookie_value(self) -> str:
        return self._cookie.hexdigest()

    def token_ok(self, presented: str | None) -> bool:
        if not presented:
            return False
        return hmac.compare_digest(presented.encode(), self._token)

    def cookie_ok(self, presented: str | None) -> bool:
        if not presented:
            return False
        return hmac.compare_digest(presented.encode(), self.cookie_value.encode())

    def set_cookie(self, *, secure: bool) -> str:
        parts = [
            f"{COOKIE}={self.cookie_value}", "Path=/", f"Max-Age={COOKIE_MAX_AGE}", "HttpOnly",
            "SameSite=Lax",
        ]
        if secure:
            parts.append("Secure")
        return "; ".join(parts)


def _header(scope: Scope, name: bytes) -> str | None:
    for key, value in scope.get("headers", ()):
        if key == name:
            return str(value.decode("latin-1"))
    return None


def _bearer(scope: Scope) -> str | None:
    value = _header(scope, b"authorization")
    if value and value[:7].lower() == "bearer ":
        return value[7:].strip()
    return None


def _cookie(scope: Scope) -> str | None:
    raw = _header(scope, b"cookie")
    if not raw:
        return None
    jar: SimpleCookie = SimpleCookie()
    try:
        jar.load(raw)
    except Exception:  # a malformed Cookie header is simply no session
        return None
    morsel = jar.get(COOKIE)
    return morsel.value if morsel is not None else None


def _wants_html(scope: Scope) -> bool:
    accept = _header(scope, b"accept") or ""
    return scope.get("method") == "GET" and "text/html" in accept


def _secure(scope: Scope) -> bool:
    return scope.get("scheme") == "https" or _header(scope, b"x-forwarded-proto") == "https"


def safe_next(target: str | None) -> str:
    """A local path to go back to after signing in; anything else goes to /."""
    if not target or not target.startswith("/") or target.startswith("//") or "\\" in target:
        return "/"
    return target


class PrivateMode:
    """ASGI middleware enforcing the dashboard token on every non-open path."""

    def __init__(self, app: ASGIApp, *, gate: Gate, render_refusal: Callable[[str, str], str]):
        self.app = app
        self.gate = gate
        self.render_refusal = render_refusal  # (path, detail) -> the sign-in page's HTML

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or is_open(scope["path"]):
            await self.app(scope, receive, send)
            return
        if self.gate.token_ok(_bearer(scope)) or self.gate.cookie_ok(_cookie(scope)):
            await self.app(scope, receive, send)
            return
        query = parse_qsl(scope.get("query_string", b"").decode("latin-1"), keep_blank_values=True)
        presented = next((v for k, v in query if k == "token"), None)
        if self.gate.token_ok(presented):
            cookie = self.gate.set_cookie(secure=_secure(scope))
            if _wants_html(scope):
                rest = urlencode([(k, v) for k, v in query if k != "token"])
                target = scope["path"] + (f"?{rest}" if rest else "")
                await _respond(send, 303, b"", "text/plain",
                               [(b"location", safe_next(target).encode()),
                                (b"set-cookie", cookie.encode())])
                return
            await self.app(scope, receive, _with_cookie(send, cookie))
            return
        detail = (
            "this dashboard is private: the token was wrong"
            if presented or _bearer(scope)
            else "this dashboard is private: send the dashboard token as a bearer header, "
            "or open it once with ?token="
        )
        if _wants_html(scope):
            body = self.render_refusal(scope["path"], detail).encode()
            await _respond(send, 401, body, "text/html; charset=utf-8", [])
            return
        await _respond(
            send, 401, orjson.dumps({"error": "unauthorized", "detail": detail}),
            "application/json", [(b"www-authenticate", b'Bearer realm="hookwatch"')],
        )


def _with_cookie(send: Send, cookie: str) -> Send:
    async def wrapped(message: Message) -> None:
        if message["type"] == "http.response.start":
            message["headers"] = [*message.get("headers", []), (b"set-cookie", cookie.encode())]
        await send(message)

    return wrapped


async def _respond(
    send: Send, status: int, body: bytes, media: str, headers: list[tuple[bytes, bytes]]
) -> None:
    await send({
        "type": "http.response.start",
        "status": status,
        "headers": [(b"content-type", media.encode()), (b"content-length", str(len(body)).encode()),
                    (b"cache-control", b"no-store"), *headers],
    })
    await send({"type": "http.response.body", "body": body})


_TOKEN_IN_QUERY = re.compile(r"([?&]token=)[^&\s]*")


class RedactToken(logging.Filter):
    """Keeps `?token=` values out of uvicorn's access log (off by default; --access-log)."""

    def filter(self, record: logging.LogRecord) -> bool:
        if isinstance(record.args, tuple):
            record.args = tuple(
                _TOKEN_IN_QUERY.sub(r"\1[redacted]", a) if isinstance(a, str) else a
                for a in record.args
            )
        return True
