"""Tokens and sessions of private mode: the admin and viewer tokens, the one-time sign-in code,
the session cookie they leave, and where a sign-in may send the browser back to.

Accepted by the guard (dashboard/guard.py): `Authorization: Bearer <token>`, the session cookie,
or `?token=<token>` once (a GET for a page is then redirected to the same URL without it, with
the cookie set). Everything is compared in constant time. /metrics is private as well: its
labels name models and deployments; Prometheus sends the token with `authorization:`.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import re
import threading
from collections.abc import Awaitable, Callable, MutableMapping
from http.cookies import SimpleCookie
from typing import Any
from urllib.parse import unquote

from hookwatch.dashboard.policy import Access, Role

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

COOKIE = "hookwatch_session"
COOKIE_MAX_AGE = 30 * 86400
_SESSION = {"admin": b"hookwatch dashboard session v1", "viewer": b"hookwatch viewer session v1"}


class Gate:
    """Checks a presented token or cookie, in constant time, and says whose it is.

    The cookie holds an HMAC of the token, not the token: a leaked cookie does not reveal it,
    and changing the token signs everyone out. Restarts keep the token, so they keep cookies.
    """

    def __init__(self, access: Access) -> None:
        if access.admin_token is None:
            raise ValueError("an open dashboard has no gate")
        self._tokens: list[tuple[bytes, Role]] = [(access.admin_token.encode(), "admin")]
        if access.viewer_token:
            self._tokens.append((access.viewer_token.encode(), "viewer"))
        self._cookies: dict[Role, str] = {
            role: hmac.new(token, _SESSION[role], hashlib.sha256).hexdigest()
            for token, role in self._tokens
        }
        self._code = access.sign_in_code.encode() if access.sign_in_code else None
        self._code_until = access.sign_in_until
        self._lock = threading.Lock()

    def cookie_value(self, role: Role) -> str:
        return self._cookies[role]

    def role_for_token(self, presented: str | None, *, now: float) -> Role | None:
        """The role of a token, or of the one-time code (spent by this call), or None."""
        if not presented:
            return None
        raw = presented.encode()
        found: Role | None = None
        for token, role in self._tokens:  # every compare runs: no early exit by role
            if hmac.compare_digest(raw, token):
                found = role
        with self._lock:
            code = self._code
            if found is None and code is not None and hmac.compare_digest(raw, code):
                self._code = None  # once
                if now < self._code_until:
                    found = "admin"
        return found

    def role_for_cookie(self, presented: str | None) -> Role | None:
        if not presented:
            return None
        found: Role | None = None
        for role, value in self._cookies.items():
            if hmac.compare_digest(presented.encode(), value.encode()):
                found = role
        return found

    def set_cookie(self, role: Role, *, secure: bool) -> str:
        # SameSite=Lax keeps links from Slack or e-mail signed in; the guard's Origin and CSRF
        # checks, not SameSite, refuse other sites' changes (Lax is per site, not per origin).
        parts = [
            f"{COOKIE}={self._cookies[role]}", "Path=/", f"Max-Age={COOKIE_MAX_AGE}", "HttpOnly",
            "SameSite=Lax",
        ]
        if secure:
            parts.append("Secure")
        return "; ".join(parts)


def header(scope: Scope, name: bytes) -> str | None:
    for key, value in scope.get("headers", ()):
        if key == name:
            return str(value.decode("latin-1"))
    return None


def bearer(scope: Scope) -> str | None:
    value = header(scope, b"authorization")
    if value and value[:7].lower() == "bearer ":
        return value[7:].strip()
    return None


def session_cookie(scope: Scope) -> str | None:
    raw = header(scope, b"cookie")
    if not raw:
        return None
    jar: SimpleCookie = SimpleCookie()
    try:
        jar.load(raw)
    except Exception:  # a malformed Cookie header is simply no session
        return None
    morsel = jar.get(COOKIE)
    return morsel.value if morsel is not None else None


def secure(scope: Scope) -> bool:
    return scope.get("scheme") == "https" or header(scope, b"x-forwarded-proto") == "https"


def _plain_path(target: str) -> bool:
    # Printable ASCII only: browsers drop tabs and newlines from a Location (so "/\t/evil"
    # becomes "//evil", another host) and read "\" as "/" (https://url.spec.whatwg.org/).
    return (target.startswith("/") and not target.startswith("//") and "\\" not in target
            and all("!" <= ch <= "~" for ch in target))


def safe_next(target: str | None) -> str:
    """A path of hookwatch's own to go back to after signing in; anything else goes to /.

    Checked as given and after each round of percent-decoding, so no encoded form of
    `//host`, `\\`, a tab or a newline gets through.
    """
    if not target:
        return "/"
    probe = target
    for _ in range(4):
        if not _plain_path(probe):
            return "/"
        decoded = unquote(probe)
        if decoded == probe:
            return target
        probe = decoded
    return "/"  # still decoding after four rounds: not a plain path


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
