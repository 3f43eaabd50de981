"""Message text: the Jinja2 templates in templates/notifications/ and the values they see."""

from __future__ import annotations

import functools
import time
from collections.abc import Callable
from typing import Any

from jinja2 import Environment, PackageLoader, StrictUndefined, select_autoescape

from hookwatch.notifiers.base import short
from hookwatch.notifiers.controls import escape_controls
from hookwatch.notifiers.message import AlertMessage

STATUS = {
    "trigger": "FIRING",
    "update": "UPDATE",
    "reminder": "STILL FIRING",
    "acknowledge": "ACKNOWLEDGED",
    "resolve": "RESOLVED",
    "test": "TEST",
}
SEVERITY_ICON = {"critical": "🔴", "error": "🟠", "warning": "🟡", "info": "🔵"}


def pct(value: float | None) -> str:
    if value is None:
        return "n/a"
    return f"{value * 100:.1f}%"


def duration(seconds: float | None) -> str:
    """600 -> '10m', 5400 -> '1h30m', 90 -> '1m30s'."""
    if seconds is None:
        return "n/a"
    total = round(seconds)
    if total <= 0:
        return "0s"
    days, rest = divmod(total, 86400)
    hours, rest = divmod(rest, 3600)
    minutes, secs = divmod(rest, 60)
    parts = [(days, "d"), (hours, "h"), (minutes, "m"), (secs, "s")]
    return "".join(f"{n}{unit}" for n, unit in parts if n)


def utc(ts: float | None) -> str:
    if ts is None:
        return "n/a"
    return time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime(ts))


def iso(ts: float) -> str:
    """RFC 3339 UTC with milliseconds, e.g. 2026-11-18T14:13:20.000Z."""
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(ts)) + f".{int(ts * 1000) % 1000:03d}Z"


def slack_escape(value: Any) -> str:
    """Slack wants exactly these three escaped in text, nothing else.

    https://api.slack.com/reference/surfaces/formatting#escaping
    """
    text = "" if value is None else escape_controls(str(value))
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def oneline(value: Any, limit: int = 200) -> str:
    """Whitespace collapsed, backticks made quotes (they would end a code span), control
    characters escaped (notifiers.controls), shortened."""
    return short(escape_controls(" ".join(str(value).replace("`", "'").split())), limit)


def visible(value: Any) -> Any:
    """Every template's finalize: text reaches a message with its control characters escaped
    (a model name's newline must not start a forged line in a page to on-call)."""
    return escape_controls(value) if type(value) is str else value


def _filters(env: Environment) -> Environment:
    env.filters.update(pct=pct, duration=duration, utc=utc, oneline=oneline)
    return env


@functools.cache
def _plain_env() -> Environment:
    # Text templates and the HTML one; autoescape only where the name ends in .html.j2.
    return _filters(
        Environment(
            loader=PackageLoader("hookwatch.templates", "notifications"),
            autoescape=select_autoescape(enabled_extensions=("html.j2",), default=False),
            undefined=StrictUndefined,
            trim_blocks=True,
            lstrip_blocks=True,
            finalize=visible,
        )
    )


@functools.cache
def _slack_env() -> Environment:
    # finalize escapes every {{ value }} once; the template's own mrkdwn (links, *bold*) stays.
    return _filters(
        Environment(
            loader=PackageLoader("hookwatch.templates", "notifications"),
            autoescape=False,  # noqa: S701 - Slack mrkdwn, escaped by finalize, not HTML
            undefined=StrictUndefined,
            trim_blocks=True,
            lstrip_blocks=True,
            finalize=slack_escape,
        )
    )


@functools.cache
def _escaping_env(escape: Callable[[Any], str]) -> Environment:
    # One environment per channel markup (Discord markdown, ...): finalize escapes each value.
    return _filters(
        Environment(
            loader=PackageLoader("hookwatch.templates", "notifications"),
            autoescape=False,  # noqa: S701 - channel markup, escaped by finalize, not HTML
            undefined=StrictUndefined,
            trim_blocks=True,
            lstrip_blocks=True,
            finalize=escape,
        )
    )


def counts_line(message: AlertMessage) -> str:
    counts = message.counts
    if not counts:
        return ""
    total = sum(counts.get(k, 0) for k in ("succeeded", "failed", "canceled", "aborted"))
    shown = ", ".join(f"{n} {k}" for k, n in counts.items())
    return f"{total} predictions: {shown}"


def context(message: AlertMessage) -> dict[str, Any]:
    """The values every template sees; the measure and title are templates themselves."""
    values: dict[str, Any] = {
        "m": message,
        "status": STATUS.get(message.kind, message.kind.upper()),
        "icon": "✅" if message.kind == "resolve" else SEVERITY_ICON.get(message.severity, "⚪"),
        "counts_line": counts_line(message),
        "link": message.alert_url or message.dashboard_url,
        "firing_for": duration((message.resolved_at or message.at) - message.started_at),
        # A message for a group of several alerts names them (templates/notifications/*).
        "grouped": message.group is not None and message.group.total > 1,
    }
    env = _plain_env()
    if values["grouped"]:
        values["group_text"] = env.get_template("group.txt.j2").render(values).rstrip()
    values["measure"] = env.get_template("measure.txt.j2").render(values).strip()
    values["title"] = " ".join(env.get_template("title.txt.j2").render(values).split())
    return values


def render(
    name: str,
    message: AlertMessage,
    values: dict[str, Any] | None = None,
    *,
    escape: Callable[[Any], str] | None = None,
) -> str:
    """Render templates/notifications/<name>; Slack's .mrkdwn.j2 ones escape for Slack, .html.j2
    ones for HTML, and with `escape` every value goes through it (a channel's own markup)."""
    if escape is not None:
        env = _escaping_env(escape)
    else:
        env = _slack_env() if name.endswith(".mrkdwn.j2") else _plain_env()
    return env.get_template(name).render(values if values is not None else context(message))

