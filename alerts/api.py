"""Alert and silence endpoints: /api/alerts, acknowledge, /api/silences."""

from __future__ import annotations

from typing import Annotated, Any

import orjson
from fastapi import APIRouter, Path, Query
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field
from sqlmodel import Session

from hookwatch.alerts import actions
from hookwatch.alerts.actions import ActionRefused, AlertContextDep, iso
from hookwatch.alerts.queries import (
    deliveries,
    get_alert,
    list_silences,
    recent_alerts,
    transitions,
)
from hookwatch.storage.session import SessionDep
from hookwatch.storage.tables import Alert, DeliveryAttempt, Notification, Silence

# A row id the databases can hold; a larger one is a 422, not an overflow deep in a driver.
RowId = Annotated[int, Path(ge=1, le=2**63 - 1)]

router = APIRouter(tags=["alerts"])


def problem(status: int, code: str, detail: str) -> JSONResponse:
    """The contract's error shape: {"error": code, "detail": sentence}."""
    return JSONResponse({"error": code, "detail": detail}, status_code=status)


def refused(exc: ActionRefused) -> JSONResponse:
    return problem(exc.status, exc.code, exc.detail)


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
    ctx: AlertContextDep,
    resolved_within: Annotated[float, Query(gt=0, le=90 * 24,
                                            description="hours of resolved alerts")] = 24,
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
) -> AlertList:
    """Open alerts (firing first), then those resolved recently, each with its deliveries."""
    now = ctx.clock()
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
    alert_id: RowId, body: AckBody, session: SessionDep, ctx: AlertContextDep
) -> Any:
    """Stops reminders for this episode and tells the rule's channels, in one transaction."""
    try:
        alert = actions.acknowledge(session, ctx, alert_id=alert_id, by=body.by,
                                    comment=body.comment)
    except ActionRefused as exc:
        return refused(exc)
    return _read(session, alert)


@router.get("/api/silences", response_model=SilenceList)
def silences(
    session: SessionDep, ctx: AlertContextDep, expired: Annotated[bool, Query()] = True
) -> SilenceList:
    """Active and pending silences, then expired ones (kept for history)."""
    now = ctx.clock()
    rows = list_silences(session, now=now, include_expired=expired)
    return SilenceList(silences=[SilenceRead.of(r, now) for r in rows])


@router.post("/api/silences", response_model=SilenceRead, status_code=201)
def create_silence(body: SilenceBody, session: SessionDep, ctx: AlertContextDep) -> Any:
    try:
        row = actions.create_silence(
            session, ctx, rule=body.rule, scope=body.scope, name=body.name,
            starts_at=body.starts_at, ends_at=body.ends_at, duration=body.duration,
            created_by=body.created_by, comment=body.comment,
        )
    except ActionRefused as exc:
        return refused(exc)
    return SilenceRead.of(row, row.created_at)


@router.delete("/api/silences/{silence_id}", response_model=SilenceRead)
def expire_silence(
    silence_id: RowId, session: SessionDep, ctx: AlertContextDep,
    by: Annotated[str | None, Query(max_length=200)] = None,
) -> Any:
    """Ends the silence now; the row stays, for history."""
    try:
        row = actions.expire_silence(session, ctx, silence_id=silence_id, by=by)
    except ActionRefused as exc:
        return refused(exc)
    assert row.expired_at is not None
    return SilenceRead.of(row, row.expired_at)
