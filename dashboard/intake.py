"""What the page and /api/status say about webhooks refused in this process (hooks.refusals):
the counts by reason, a banner when most recent ones were refused or nothing can be received."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from hookwatch.hooks.refusals import Refusals, Window

BANNER_MINUTES = 5
NOT_CONFIGURED = ("no webhook secret or ingest token is set, so every webhook is refused "
                  "with 401: set HOOKWATCH_WEBHOOK_SECRETS or HOOKWATCH_INGEST_TOKEN")


@dataclass(frozen=True, slots=True)
class IntakeView:
    configured: bool
    recent: Window  # the last 5 minutes
    hour: Window
    title: str | None  # the headline's big words, when the banner replaces "All good"
    banner: str | None  # most recent webhooks refused, or none can be received
    note: str | None  # some refused in the last hour: by reason, in one line


def _reasons(window: Window) -> str:
    return ", ".join(f"{window.reason(key).label} {n}" for key, n in window.reasons.items())


def intake_view(refusals: Refusals, now: float) -> IntakeView:
    recent = refusals.window(now, BANNER_MINUTES)
    hour = refusals.window(now, 60)
    title = banner = note = None
    if not refusals.configured:
        title, banner = "Nothing can be received", NOT_CONFIGURED
    elif recent.refused and recent.refused * 2 > recent.received and recent.top is not None:
        top = recent.top
        others = {k: n for k, n in recent.reasons.items() if k != top.key}
        rest = "; also " + ", ".join(f"{recent.reason(k).label} {n}" for k, n in others.items()) \
            if others else ""
        title = "Webhooks are being refused"
        banner = (f"{recent.refused} of {recent.received} webhook"
                  f"{'s' if recent.received != 1 else ''} in the last {BANNER_MINUTES} minutes "
                  f"{'were' if recent.refused != 1 else 'was'} refused: {top.label} — "
                  f"{top.hint}{rest}")
    if hour.refused and banner is None:
        note = (f"{hour.refused} of {hour.received} webhooks refused in the last hour: "
                f"{_reasons(hour)}")
    return IntakeView(refusals.configured, recent, hour, title, banner, note)


def _window_json(window: Window) -> dict[str, Any]:
    return {"received": window.received, "refused": window.refused,
            "reasons": window.reasons, "codes": window.codes}


def refused_json(refusals: Refusals, now: float) -> dict[str, Any]:
    """/api/status's `refused`: this process's refusals by reason over 5 minutes and the hour
    (to the minute), and whether a secret or token is set at all."""
    return {"configured": refusals.configured,
            "5m": _window_json(refusals.window(now, BANNER_MINUTES)),
            "1h": _window_json(refusals.window(now, 60))}
