"""The guard in front of everything people reach: Host, token and role, and, for every change,
the site it comes from, the CSRF token of a form, and a bearer header for the JSON API.

Three audiences (DESIGN.md, "Access"): the webhook sender (its own authentication, answered
before this runs: hookwatch/app.py), health checks and static files (always open), and people
(everything else, closed by default: a route added later is guarded too). In open mode (no
token: `serve` listens on loopback only) people on this machine may look and change; every
other check below still holds.
"""

from __future__ import annotations

from collections.abc import Callable
from urllib.parse import parse_qsl, quote, urlencode

import orjson

from hookwatch.dashboard.auth import (
    ASGIApp,
    Gate,
    Message,
    Receive,
    Scope,
    Send,
    bearer,
    header,
    safe_next,
    secure,
    session_cookie,
)
from hookwatch.dashboard.csrf import FIELD, Csrf, Viewing, current
from hookwatch.dashboard.origins import cross_site, from_afar, host_problem
from hookwatch.dashboard.policy import Access, Role
from hookwatch.dashboard.ratelimit import SignInLimiter
from hookwatch.dashboard.render import HTML_HEADERS

SAFE = frozenset({"GET", "HEAD", "OPTIONS"})
ALWAYS_OPEN = frozenset({"/hooks/replicate", "/healthz", "/readyz"})
OPEN_PREFIXES = ("/static/",)
SIGN_IN = "/auth"
FORM_LIMIT = 64 * 1024  # our forms are a few hundred bytes
FORMS = ("application/x-www-form-urlencoded", "multipart/form-data")
HTML = "text/html; charset=utf-8"
PAGE_HEADERS = [(k.encode(), v.encode()) for k, v in HTML_HEADERS.items() if k != "cache-control"]

# (template name, path to go back to, detail) -> the page's HTML (dashboard/setup.py).
Renderer = Callable[[str, str, str], str]


def is_open(path: str) -> bool:
    return path in ALWAYS_OPEN or path.startswith(OPEN_PREFIXES)


def client_key(scope: Scope) -> str:
    client = scope.get("client")
    return str(client[0]) if client else "unknown"


def wants_html(scope: Scope) -> bool:
    return "text/html" in (header(scope, b"accept") or "") and (
        header(scope, b"hx-request") != "true")


def _query_token(scope: Scope) -> tuple[str | None, list[tuple[str, str]]]:
    query = parse_qsl(scope.get("query_string", b"").decode("latin-1"), keep_blank_values=True)
    return next((v for k, v in query if k == "token"), None), query


class Guard:
    """ASGI middleware; one per app (dashboard/setup.py)."""

    def __init__(self, app: ASGIApp, *, access: Access, gate: Gate | None,
                 clock: Callable[[], float], limiter: SignInLimiter, csrf: Csrf,
                 render: Renderer) -> None:
        self.app, self.access, self.gate, self.clock = app, access, gate, clock
        self.limiter, self.csrf, self.render = limiter, csrf, render

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        path, method = scope.get("path", ""), scope.get("method", "GET")
        if scope["type"] != "http" or is_open(path) or (
                self.access.public_badges and path.startswith("/badge/") and method in SAFE):
            await self.app(scope, receive, send)
            return
        now = self.clock()
        reset = current.set(Viewing(can_change=False, csrf=self.csrf.issue(now=now)))
        try:
            await self._guard(scope, receive, send, now)
        finally:
            current.reset(reset)

    async def _guard(self, scope: Scope, receive: Receive, send: Send, now: float) -> None:
        path, method = scope["path"], scope["method"]
        html = wants_html(scope)
        role: Role | None = None
        by_bearer = False
        cookie: str | None = None
        presented = bearer(scope)
        if presented is not None and self.gate is not None:
            if await self._limited(scope, send, now, html):
                return
            role = self.gate.role_for_token(presented, now=now)
            if role is None:
                self.limiter.failed(client_key(scope), now=now)
                await self._unauthorized(scope, send, "this dashboard is private: the token "
                                         "was wrong", html)
                return
            by_bearer = True  # not ambient: no browser sends it by itself, so no Host check
        elif (problem := host_problem(scope, self.access)) is not None:
            await self._refuse(send, 421, "unknown_host", problem, html)
            return
        if self.gate is None:
            if from_afar(scope):
                await self._refuse(send, 403, "local_only", "this hookwatch has no dashboard "
                                   "token, so only this machine may use it, and this request "
                                   "came through a proxy or from afar: set "
                                   "HOOKWATCH_DASHBOARD_TOKEN", html)
                return
            role = "admin"
        elif role is None:
            role = self.gate.role_for_cookie(session_cookie(scope))
            token, query = _query_token(scope)
            if role is None and token is not None and method in SAFE:
                if await self._limited(scope, send, now, html):
                    return
                role = self.gate.role_for_token(token, now=now)
                if role is None:
                    self.limiter.failed(client_key(scope), now=now)
                    await self._unauthorized(scope, send, "this dashboard is private: the token "
                                             "was wrong", html)
                    return
                cookie = self.gate.set_cookie(role, secure=secure(scope))
                if method == "GET" and html:
                    await _respond(send, 303, b"", "text/plain", [
                        (b"location", _without_token(scope, query).encode()),
                        (b"set-cookie", cookie.encode())])
                    return
        if method not in SAFE and (problem := cross_site(scope, self.access)) is not None:
            await self._refuse(send, 403, "cross_site", problem, html)
            return
        if role is None and path != SIGN_IN:
            await self._unauthorized(scope, send, "this dashboard is private: send the "
                                     "dashboard token as a bearer header, or open it once "
                                     "with ?token=", html)
            return
        if method not in SAFE:
            checked = await self._change(scope, receive, send, role, by_bearer, now, html)
            if checked is None:
                return
            receive = checked
        current.set(Viewing(can_change=role == "admin", csrf=self.csrf.issue(now=now)))
        await self.app(scope, receive, _with_cookie(send, cookie) if cookie else send)

    async def _change(self, scope: Scope, receive: Receive, send: Send, role: Role | None,
                      by_bearer: bool, now: float, html: bool) -> Receive | None:
        """The checks of a change; the receive to go on with, or None once refused."""
        path = scope["path"]
        if role == "viewer":
            await self._refuse(send, 403, "read_only", "this token may look, not change: "
                               "sign in with the dashboard token", html)
            return None
        if path.startswith("/api/"):
            if self.gate is not None and not by_bearer:
                await self._refuse(send, 403, "bearer_required", "changes through the JSON API "
                                   "need the token in an Authorization: Bearer header, not "
                                   "a cookie", html)
                return None
            return receive
        if by_bearer:
            return receive  # a script with the token: no form, no CSRF token
        body = await _read_body(receive, FORM_LIMIT)
        if body is None:
            await self._refuse(send, 413, "form_too_large",
                               f"a form here is at most {FORM_LIMIT} bytes", html)
            return None
        problem = self.csrf.problem(_form_field(scope, body, FIELD), now=now)
        if problem is not None:
            await self._refuse(send, 403, "csrf", problem, html)
            return None
        return _replay(body, receive)

    async def _limited(self, scope: Scope, send: Send, now: float, html: bool) -> bool:
        wait = self.limiter.retry_after(client_key(scope), now=now)
        if not wait:
            return False
        detail = (f"too many wrong tokens from your address: try again in {wait} s")
        headers = [(b"retry-after", str(wait).encode())]
        if html:
            page = self.render("unauthorized.html", scope["path"], detail)
            await _respond(send, 429, page.encode(), HTML, [*PAGE_HEADERS, *headers])
        else:
            await _respond(send, 429, _problem("too_many_attempts", detail),
                           "application/json", headers)
        return True

    async def _unauthorized(self, scope: Scope, send: Send, detail: str, html: bool) -> None:
        if html and scope["method"] == "GET":
            page = self.render("unauthorized.html", scope["path"], detail)
            await _respond(send, 401, page.encode(), HTML, PAGE_HEADERS)
            return
        await _respond(send, 401, _problem("unauthorized", detail), "application/json",
                       [(b"www-authenticate", b'Bearer realm="hookwatch"')])

    async def _refuse(self, send: Send, status: int, code: str, detail: str,
                      html: bool) -> None:
        if html:
            page = self.render("refused.html", "/", detail)
            await _respond(send, status, page.encode(), HTML, PAGE_HEADERS)
            return
        await _respond(send, status, _problem(code, detail), "application/json", [])


def _problem(code: str, detail: str) -> bytes:
    return orjson.dumps({"error": code, "detail": detail})


def _without_token(scope: Scope, query: list[tuple[str, str]]) -> str:
    """Where `?token=` sends a browser: the same path of ours, without the token."""
    rest = urlencode([(k, v) for k, v in query if k != "token"])
    # The path arrives decoded ("/%09/x" is "/\t/x"): quote it again, then check it.
    target = quote(scope["path"], safe="/:@!$&'()*+,;=-._~") + (f"?{rest}" if rest else "")
    return safe_next(target)


def _form_field(scope: Scope, body: bytes, name: str) -> str | None:
    media = (header(scope, b"content-type") or "").split(";")[0].strip().lower()
    if media != FORMS[0]:
        return None  # only our own forms' encoding carries the token
    try:
        fields = parse_qsl(body.decode("utf-8"), keep_blank_values=True)
    except UnicodeDecodeError:
        return None
    return next((v for k, v in fields if k == name), None)


async def _read_body(receive: Receive, limit: int) -> bytes | None:
    chunks: list[bytes] = []
    size = 0
    while True:
        message = await receive()
        if message["type"] != "http.request":
            return None
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > limit:
            return None
        chunks.append(chunk)
        if not message.get("more_body"):
            return b"".join(chunks)


def _replay(body: bytes, receive: Receive) -> Receive:
    sent = False

    async def again() -> Message:
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}
        return await receive()

    return again


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
