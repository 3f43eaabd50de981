"""CSRF tokens for the dashboard's forms, and what the page may offer to the one viewing it.

A token is `<issued>.<HMAC(key, issued)>`: another site can neither read one (same-origin
policy; DNS rebinding is stopped by the Host check) nor make one. The key comes from the
dashboard token (the same on every replica), or is random per process in open mode. The
templates call `csrf_token()` and `can_change()`, which read the request's context.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from contextvars import ContextVar
from dataclasses import dataclass

FIELD = "csrf"
MAX_AGE = 24 * 3600.0  # the page refreshes its forms every few seconds; a day is generous


class Csrf:
    def __init__(self, secret: str | None) -> None:
        seed = secret.encode() if secret else secrets.token_bytes(32)
        self._key = hmac.new(seed, b"hookwatch csrf key v1", hashlib.sha256).digest()

    def _mac(self, issued: str) -> str:
        return hmac.new(self._key, issued.encode(), hashlib.sha256).hexdigest()[:32]

    def issue(self, *, now: float) -> str:
        issued = f"{int(now):x}"
        return f"{issued}.{self._mac(issued)}"

    def problem(self, presented: str | None, *, now: float) -> str | None:
        """Why this token is refused, or None when it is good."""
        if not presented:
            return "the form carries no CSRF token: reload the page and try again"
        issued, _, mac = presented.partition(".")
        if not hmac.compare_digest(mac.encode(), self._mac(issued).encode()):
            return "the form's CSRF token is not this hookwatch's: reload the page"
        try:
            age = now - int(issued, 16)
        except ValueError:
            return "the form's CSRF token is malformed: reload the page"
        if not -300 <= age <= MAX_AGE:
            return "the form is too old: reload the page and try again"
        return None


@dataclass(frozen=True)
class Viewing:
    """Who is looking at the page being rendered."""

    can_change: bool
    csrf: str


current: ContextVar[Viewing | None] = ContextVar("hookwatch_viewing", default=None)


def csrf_token() -> str:
    viewing = current.get()
    return viewing.csrf if viewing is not None else ""


def can_change() -> bool:
    viewing = current.get()
    return viewing.can_change if viewing is not None else True
