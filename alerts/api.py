"""Alert and silence endpoints: /api/alerts, acknowledge, /api/silences."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Any

import orjson
from fastapi import APIRouter, Path, Query
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field
from sqlmodel import Session

from hookwatch.alerts.compose import compose
from hookwatch.alerts.duration import DurationError, parse_duration
from hookwatch.alerts.job import nudge
from hookwatch.alerts.notify import route
from hookwatch.alerts.queries import (
    deliveries,
    get_alert,
    list_silences,
    recent_alerts,
    transitions,
)
from hookwatch.alerts.rules import SCOPES
from hookwatch.alerts.state import FIRING
from hookwatch.alerts.store import add_notifications, take_lock
from hookwatch.alerts.tables import Alert, AlertTransition, Silence
from hookwatch.deps import RuntimeDep, SessionDep
from hookwatch.notifiers.outbox import DeliveryAttempt, Notification
from hookwatch.notifiers.worker import request_delivery

# A row id the databases can hold; a larger one is a 422, not an overflow deep in a driver.
RowId = Annotated[int, Path(ge=1, le=2**63 - 1)]

router = APIRouter(tags=["alerts"])
MAX_SILENCE = 90 * 86400.0


def iso(ts: float | None) -> str | None:
    if ts is None:
        return None
    return datetime.fromtimestamp(ts, UTC).isoformat().replace("+00:00", "Z")


def problem(status: int, code: str, detail: str) -> JSONResponse:
    """The contract's error shape: {"error": code, "detail": sentence}."""
    return JSONResponse({"error": code, "detail": detail}, status_code=status)


class AttemptRead(BaseModel):
    at: str | None
    outcome: str
    http_status: int | None
    error: str | None
    duration_ms: float

    @classmethod
    def of(cls, row: DeliveryAttempt) -> AttemptRead:
        return cls(at=iso(row.at), outcome=row.outcome, http_status=row.http_status,
                   error=row.error, duration_ms=row.duration_ms)


class NotificationRead(BaseModel):
    id: int
    notifier: str
    kind: str
    state: str
    attempts: int
    last_error: str | None
    created_at: str | None
    sent_at: str | None
    delivery_attempts: list[AttemptRead]

    @classmethod
    def of(cls, row: Notification, attempts: list[DeliveryAttempt]) -> NotificationRead:
        return cls(id=row.id or 0, notifier=row.notifier, kind=row.kind, state=row.state,
                   attempts=row.attempts, last_error=row.last_error,
                   created_at=iso(row.created_at), sent_at=iso(row.sent_at),
                   delivery_attempts=[AttemptRead.of(a) for a in attempts])


class TransitionRead(BaseModel):
    at: str | None
    from_state: str
    to_state: str
    value: float | None
    note: str


class AlertRead(BaseModel):
    id: int
    key: str
    rule: str
    kind: str
    severity: str
    scope: str
    name: str
    state: str
    since: str | None
    fired_at: str | None
    resolved_at: str | None
    value: float | None
    threshold: float | None
    summary: str
    counts: dict[str, int]
    muted_by: str | None
    acked_by: str | None
    acked_at: str | None
    ack_comment: str | None
    notifications: list[NotificationRead] = Field(default_factory=list)
    transitions: list[TransitionRead] | None = None

    @classmethod
    def of(cls, row: Alert, notes: list[tuple[Notification, list[DeliveryAttempt]]]
           ) -> AlertRead:
        return cls(
            id=row.id or 0, key=row.key, rule=row.rule, kind=row.rule_kind,
            severity=row.severity, scope=row.scope, name=row.name, state=row.state,
            since=iso(row.since), fired_at=iso(row.fired_at), resolved_at=iso(row.resolved_at),
            value=row.value, threshold=row.threshold, summary=row.summary,
            counts=orjson.loads(row.counts or "{}"), muted_by=row.muted_by,
            acked_by=row.acked_by, acked_at=iso(row.acked_at), ack_comment=row.ack_comment,
            notifications=[NotificationRead.of(n, a) for n, a in notes],
        )


class AlertList(BaseModel):
    alerts: list[AlertRead]


class AckBody(BaseModel):
    model_config = ConfigDict(extra="forbid")
    by: str = Field(min_length=1, max_length=200, description="who takes it")
    comment: str = Field(default="", max_length=2000, description="why, or what happens next")


class SilenceBody(BaseModel):
    """Matchers are globs; `ends_at` or `duration` (e.g. "2h") says when it ends."""

    model_config = ConfigDict(extra="forbid")
    rule: str = Field(default="*", min_length=1, max_length=200)
    scope: str = Field(default="*", min_length=1, max_length=20)
    name: str = Field(default="*", min_length=1, max_length=400)
    starts_at: float | str | None = Field(default=None, description="ISO 8601 or unix seconds")
    ends_at: float | str | None = Field(default=None, description="ISO 8601 or unix seconds")
    duration: str | None = Field(default=None, description='e.g. "2h"; instead of ends_at')
    created_by: str = Field(min_length=1, max_length=200)
    comment: str = Field(min_length=1, max_length=2000)


class SilenceRead(BaseModel):
    id: int
    rule: str
    scope: str
    name: str
    starts_at: str | None
    ends_at: str | None
    created_by: str
    comment: str
    created_at: str | None
    expired_at: str | None
    expired_by: str | None
    state: str  # pending | active | expired

    @classmethod
    def of(cls, row: Silence, now: float) -> SilenceRead:
        state = "expired" if row.ends_at <= now else "active" if row.starts_at <= now \
            else "pending"
        return cls(id=row.id or 0, rule=row.rule, scope=row.scope, name=row.name,
                   starts_at=iso(row.starts_at), ends_at=iso(row.ends_at),
                   created_by=row.created_by, comment=row.comment,
                   created_at=iso(row.created_at), expired_at=iso(row.expired_at),
                   expired_by=row.expired_by, state=state)


class SilenceList(BaseModel):
    silences: list[SilenceRead]


def _read(session: Session, alert: Alert, *, history: bool = False) -> AlertRead:
    notes = deliveries(session, alert_ids=[alert.id or 0]).get(alert.id or 0, [])
    read = AlertRead.of(alert, notes)
    if history:
        read.transitions = [
            TransitionRead(at=iso(t.at), from_state=t.from_state, to_state=t.to_state,
                           value=t.value, note=t.note)
            for t in transitions(session, alert_id=alert.id or 0)
        ]
    return read


@router.get("/api/alerts", response_model=AlertList)
def list_alerts(
    session: SessionDep,
    runtime: RuntimeDep,
    resolved_within: Annotated[float, Query(gt=0, le=90 * 24,
                                            description="hours of resolved alerts")] = 24,
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
) -> AlertList:
    """Open alerts (firing first), then those resolved recently, each with its deliveries."""
    now = runtime.clock()
    rows = recent_alerts(session, since=now - resolved_within * 3600, limit=limit)
    notes = deliveries(session, alert_ids=[r.id for r in rows if r.id is not None])
    return AlertList(alerts=[AlertRead.of(r, notes.get(r.id or 0, [])) for r in rows])


@router.get("/api/alerts/{alert_id}", response_model=AlertRead)
def read_alert(alert_id: RowId, session: SessionDep) -> Any:
    alert = get_alert(session, alert_id=alert_id)
    if alert is None:
        return problem(404, "not_found", f"there is no alert {alert_id}")
    return _read(session, alert, history=True)


@router.post("/api/alerts/{alert_id}/ack", response_model=AlertRead)
def acknowledge(
    alert_id: RowId, body: AckBody, session: SessionDep, runtime: RuntimeDep
) -> Any:
    """Stops reminders for this episode and tells the rule's channels, in one transaction."""
    now = take_lock(session, runtime.clock(), evaluation=False)  # no evaluator overwrites it
    alert = get_alert(session, alert_id=alert_id)
    if alert is None:
        return problem(404, "not_found", f"there is no alert {alert_id}")
    if alert.state != FIRING:
        return problem(409, "not_firing",
                       f"alert {alert_id} is {alert.state}; only a firing alert can be "
                       "acknowledged")
    if alert.acked_by is not None:
        return problem(409, "already_acknowledged",
                       f"alert {alert_id} was acknowledged by {alert.acked_by} at "
                       f"{iso(alert.acked_at)}")
    alert.acked_by, alert.acked_at, alert.ack_comment = body.by, now, body.comment or None
    note = f"acknowledged by {body.by}" + (f": {body.comment}" if body.comment else "")
    session.add(AlertTransition(alert_id=alert_id, at=now, from_state=alert.state,
                                to_state=alert.state, value=alert.value, note=note))
    rule = next((r for r in runtime.config.rules if r.name == alert.rule), None)
    if rule is not None and alert.notified:
        message = compose(alert, kind="acknowledge", now=now,
                          base_url=runtime.settings.base_url, rule=rule)
        add_notifications(session, alert=alert, message=message, notifiers=route(rule),
                          suppressed=False, now=now)
    session.commit()
    request_delivery(runtime)
    session.refresh(alert)
    return _read(session, alert)


@router.get("/api/silences", response_model=SilenceList)
def silences(
    session: SessionDep, runtime: RuntimeDep, expired: Annotated[bool, Query()] = True
) -> SilenceList:
    """Active and pending silences, then expired ones (kept for history)."""
    now = runtime.clock()
    rows = list_silences(session, now=now, include_expired=expired)
    return SilenceList(silences=[SilenceRead.of(r, now) for r in rows])


def _time(value: float | str | None, field: str) -> float | None:
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


@router.post("/api/silences", response_model=SilenceRead, status_code=201)
def create_silence(body: SilenceBody, session: SessionDep, runtime: RuntimeDep) -> Any:
    now = runtime.clock()
    if body.scope not in ("*", *SCOPES):
        return problem(422, "invalid_silence", f"scope must be *, {', '.join(SCOPES)}")
    try:
        starts = _time(body.starts_at, "starts_at") or now
        ends = _time(body.ends_at, "ends_at")
        if (ends is None) == (body.duration is None):
            raise ValueError("give exactly one of ends_at and duration")
        if body.duration is not None:
            ends = starts + parse_duration(body.duration)
    except (ValueError, DurationError) as exc:
        return problem(422, "invalid_silence", str(exc))
    assert ends is not None
    if ends <= max(starts, now):
        return problem(422, "invalid_silence", "the silence must end after it starts and "
                                               "in the future")
    if ends - starts > MAX_SILENCE:
        return problem(422, "invalid_silence", "a silence lasts at most 90 days")
    row = Silence(rule=body.rule, scope=body.scope, name=body.name, starts_at=starts,
                  ends_at=ends, created_by=body.created_by, comment=body.comment,
                  created_at=now)
    session.add(row)
    session.commit()
    nudge(runtime)  # a silence mutes (or unmutes) at once, not at the next tick
    session.refresh(row)
    return SilenceRead.of(row, now)


@router.delete("/api/silences/{silence_id}", response_model=SilenceRead)
def expire_silence(
    silence_id: RowId, session: SessionDep, runtime: RuntimeDep,
    by: Annotated[str | None, Query(max_length=200)] = None,
) -> Any:
    """Ends the silence now; the row stays, for history."""
    now = runtime.clock()
    row = session.get(Silence, silence_id)
    if row is None:
        return problem(404, "not_found", f"there is no silence {silence_id}")
    if row.ends_at <= now:
        return problem(409, "already_expired", f"silence {silence_id} ended at "
                                               f"{iso(row.ends_at)}")
    row.ends_at, row.expired_at, row.expired_by = now, now, by
    session.add(row)
    session.commit()
    nudge(runtime)  # a silence mutes (or unmutes) at once, not at the next tick
    session.refresh(row)
    return SilenceRead.of(row, now)
