"""Alert actions: acknowledge, silence, expire a silence. Plain functions that the JSON API
(alerts.api) and the dashboard's forms (dashboard.actions) both call; each commits its change
and tells the shell what to wake (delivery for new outbox rows, the evaluator for silences)."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Annotated

from fastapi import Depends
from sqlmodel import Session

from hookwatch.alerts.compose import compose
from hookwatch.alerts.duration import DurationError, parse_duration
from hookwatch.alerts.notify import route
from hookwatch.alerts.queries import get_alert
from hookwatch.alerts.rules import SCOPES, Rule
from hookwatch.alerts.state import FIRING
from hookwatch.alerts.store import add_notifications, take_lock
from hookwatch.storage.tables import Alert, AlertTransition, Silence

MAX_SILENCE = 90 * 86400.0


@dataclass(frozen=True)
class AlertContext:
    """What the actions need, built by create_app."""

    rules: Sequence[Rule]
    base_url: str
    clock: Callable[[], float]
    wake_delivery: Callable[[], None]  # outbox rows were committed: send them soon
    nudge_evaluation: Callable[[], None]  # silences changed: evaluate soon, not at the tick


def get_alert_context() -> AlertContext:
    """A placeholder that create_app binds to the app's AlertContext."""
    raise LookupError("no alert context: this app was not built by hookwatch.app.create_app")


AlertContextDep = Annotated[AlertContext, Depends(get_alert_context)]


class ActionRefused(Exception):
    """The action was refused: an HTTP status, the contract's error code and a sentence."""

    def __init__(self, status: int, code: str, detail: str) -> None:
        super().__init__(detail)
        self.status = status
        self.code = code
        self.detail = detail


def acknowledge(session: Session, ctx: AlertContext, *, alert_id: int, by: str,
                comment: str = "") -> Alert:
    """Stops reminders for this episode and tells the rule's channels, in one transaction."""
    now = take_lock(session, ctx.clock(), evaluation=False)  # no evaluator overwrites it
    alert = get_alert(session, alert_id=alert_id)
    if alert is None:
        raise ActionRefused(404, "not_found", f"there is no alert {alert_id}")
    if alert.state != FIRING:
        raise ActionRefused(409, "not_firing", f"alert {alert_id} is {alert.state}; only a "
                                               "firing alert can be acknowledged")
    if alert.acked_by is not None:
        raise ActionRefused(409, "already_acknowledged",
                            f"alert {alert_id} was acknowledged by {alert.acked_by} at "
                            f"{iso(alert.acked_at)}")
    alert.acked_by, alert.acked_at, alert.ack_comment = by, now, comment or None
    note = f"acknowledged by {by}" + (f": {comment}" if comment else "")
    session.add(AlertTransition(alert_id=alert_id, at=now, from_state=alert.state,
                                to_state=alert.state, value=alert.value, note=note))
    rule = next((r for r in ctx.rules if r.name == alert.rule), None)
    if rule is not None and alert.notified:
        message = compose(alert, kind="acknowledge", now=now, base_url=ctx.base_url, rule=rule)
        add_notifications(session, alert=alert, message=message, notifiers=route(rule),
                          suppressed=False, now=now)
    session.commit()
    ctx.wake_delivery()
    session.refresh(alert)
    return alert


def parse_time(value: float | str | None, field: str) -> float | None:
    """ISO 8601 with a time zone, or unix seconds."""
    if value is None:
        return None
    if isinstance(value, float | int):
        return float(value)
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        raise ValueError(f"{field} must be ISO 8601 (e.g. 2026-05-01T12:00:00Z) or unix "
                         "seconds") from None
    if parsed.tzinfo is None:
        raise ValueError(f"{field} needs a time zone, e.g. a trailing Z")
    return parsed.timestamp()


def create_silence(
    session: Session, ctx: AlertContext, *, rule: str = "*", scope: str = "*", name: str = "*",
    starts_at: float | str | None = None, ends_at: float | str | None = None,
    duration: str | None = None, created_by: str, comment: str,
) -> Silence:
    """A silence from now (or `starts_at`) until `ends_at` or for `duration` (e.g. "2h")."""
    now = ctx.clock()
    if scope not in ("*", *SCOPES):
        raise ActionRefused(422, "invalid_silence", f"scope must be *, {', '.join(SCOPES)}")
    try:
        starts = parse_time(starts_at, "starts_at") or now
        ends = parse_time(ends_at, "ends_at")
        if (ends is None) == (duration is None):
            raise ValueError("give exactly one of ends_at and duration")
        if duration is not None:
            ends = starts + parse_duration(duration)
    except (ValueError, DurationError) as exc:
        raise ActionRefused(422, "invalid_silence", str(exc)) from None
    assert ends is not None
    if ends <= max(starts, now):
        raise ActionRefused(422, "invalid_silence", "the silence must end after it starts and "
                                                    "in the future")
    if ends - starts > MAX_SILENCE:
        raise ActionRefused(422, "invalid_silence", "a silence lasts at most 90 days")
    row = Silence(rule=rule, scope=scope, name=name, starts_at=starts, ends_at=ends,
                  created_by=created_by, comment=comment, created_at=now)
    session.add(row)
    session.commit()
    ctx.nudge_evaluation()  # a silence mutes (or unmutes) at once, not at the next tick
    session.refresh(row)
    return row


def expire_silence(session: Session, ctx: AlertContext, *, silence_id: int,
                   by: str | None = None) -> Silence:
    """Ends the silence now; the row stays, for history."""
    now = ctx.clock()
    row = session.get(Silence, silence_id)
    if row is None:
        raise ActionRefused(404, "not_found", f"there is no silence {silence_id}")
    if row.ends_at <= now:
        raise ActionRefused(409, "already_expired", f"silence {silence_id} ended at "
                                                    f"{iso(row.ends_at)}")
    row.ends_at, row.expired_at, row.expired_by = now, now, by
    session.add(row)
    session.commit()
    ctx.nudge_evaluation()
    session.refresh(row)
    return row


def iso(ts: float | None) -> str | None:
    if ts is None:
        return None
    return datetime.fromtimestamp(ts, UTC).isoformat().replace("+00:00", "Z")
