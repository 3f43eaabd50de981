"""The dashboard's Jinja2 environment (autoescape always on) and its number and time filters."""

from __future__ import annotations

from datetime import UTC, datetime
from functools import lru_cache
from typing import Any

from jinja2 import Environment, PackageLoader, StrictUndefined, Template

from hookwatch.dashboard.csrf import can_change, csrf_token
from hookwatch.dashboard.svg import history_bar, sparkline
from hookwatch.notifiers.controls import escape_for_page

# Defence in depth behind autoescape: only our own scripts and styles run, no inline code, no
# framing. htmx is configured (base.html) to need neither eval nor inline styles.
HTML_HEADERS = {
    "cache-control": "no-store",
    "content-security-policy": (
        "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
        "object-src 'none'; base-uri 'none'; frame-ancestors 'none'; form-action 'self'"
    ),
    "x-content-type-options": "nosniff",
    "referrer-policy": "same-origin",
}


def pct(rate: float | None) -> str:
    if rate is None:
        return "—"
    if rate == 0:
        return "0%"
    if rate < 0.001:
        return "<0.1%"
    if rate < 0.1:
        return f"{rate * 100:.1f}%"
    return f"{rate * 100:.0f}%"


RATE_WARN, RATE_BAD = 0.05, 0.2
"""Colour thresholds for rate cells; the default rules fire at 20%."""


def rate_class(rate: float | None) -> str:
    if rate is None:
        return "none"
    if rate >= RATE_BAD:
        return "bad"
    if rate >= RATE_WARN:
        return "warn"
    return "ok"


def secs(seconds: float | None) -> str:
    if seconds is None:
        return "—"
    if seconds < 1:
        return f"{seconds * 1000:.0f} ms"
    if seconds < 60:
        return f"{seconds:.1f} s"
    if seconds < 3600:
        return f"{seconds / 60:.1f} min"
    return f"{seconds / 3600:.1f} h"


def num(value: int | float) -> str:
    if value < 1000:
        return f"{value:g}"
    if value < 1_000_000:
        return f"{value / 1000:.1f}k".replace(".0k", "k")
    return f"{value / 1_000_000:.1f}M".replace(".0M", "M")


def ago(ts: float | None, now: float) -> str:
    if ts is None:
        return "—"
    delta = max(0.0, now - ts)
    if delta < 60:
        return f"{delta:.0f} s ago"
    if delta < 3600:
        return f"{delta / 60:.0f} min ago"
    if delta < 86400:
        return f"{delta / 3600:.1f} h ago"
    return f"{delta / 86400:.0f} d ago"


def utc(ts: float | None) -> str:
    if ts is None:
        return "—"
    return datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def iso(ts: float | None) -> str:
    if ts is None:
        return ""
    return datetime.fromtimestamp(ts, UTC).isoformat().replace("+00:00", "Z")


def visible(value: Any) -> Any:
    """The finalize of every {{ }}: a sender's control characters shown as escapes (ESC as
    \\x1b), before autoescape; our own Markup (SVG) passes as it is."""
    return escape_for_page(value) if type(value) is str else value


@lru_cache(maxsize=1)
def environment() -> Environment:
    env = Environment(
        loader=PackageLoader("hookwatch.templates", "dashboard"),
        autoescape=True,  # every {{ }} is HTML-escaped, .svg partials included
        undefined=StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
        finalize=visible,
    )
    env.filters.update(
        pct=pct, rate_class=rate_class, secs=secs, num=num, utc=utc, iso=iso,
        sparkline=sparkline, history_bar=history_bar,
    )
    env.globals.update(ago=ago, csrf_token=csrf_token, can_change=can_change)
    return env


def template(name: str) -> Template:
    return environment().get_template(name)


def render(name: str, **context: Any) -> str:
    return template(name).render(**context)
