"""Open alerts as the dashboard shows them: worst first, with this episode's deliveries and the
silences that cover them. Reads through alerts.queries; adds only presentation."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

from sqlmodel import Session

from hookwatch.alerts.queries import deliveries, list_silences, open_alerts
from hookwatch.alerts.silence import is_active, matches
from hookwatch.alerts.state import FIRING
from hookwatch.storage.tables import Alert, DeliveryAttempt, Notification, Silence

MAX_DELIVERIES = 12
"""Per alert, the most recent notifications shown."""


@dataclass(frozen=True, slots=True)
class DeliveryView:
    """One notification of an alert, by channel: what became of it and why."""

    notifier: str
    kind: str  # trigger | reminder | resolve | acknowledge | test
    state: str  # queued | sent | retrying | failed | suppressed
    attempts: int
    created_at: float
    sent_at: float | None
    due_at: float
    error: str | None
    http_status: int | None


@dataclass(frozen=True, slots=True)
class SilenceView:
    id: int
    ends_at: float
    created_by: str
    comment: str


@dataclass(slots=True)
class AlertView:
    id: int
    key: str
    rule: str
    rule_kind: str
    severity: str
    scope: str
    name: str
    state: str  # pending | firing
    since: float
    fired_at: float | None
    value: float | None
    threshold: float | None
    summary: str
    muted_by: str | None
    acked_by: str | None
    acked_at: float | None
    ack_comment: str | None
    deliveries: list[DeliveryView] = field(default_factory=list)
    silences: list[SilenceView] = field(default_factory=list)

    @property
    def silenced(self) -> bool:
        return self.muted_by is not None or bool(self.silences)

    @property
    def scope_status(self) -> str:
        """What this alert makes its scope's status. As alerts.queries.scope_statuses: an
        inhibited alert still says firing (the scope is failing), a silenced one silenced."""
        if self.state == FIRING:
            silenced = (self.muted_by or "").startswith("silence") or bool(self.silences)
            return "silenced" if silenced else "firing"
        return "pending"


def delivery_state(row: Notification) -> str:
    if row.state == "pending":
        return "retrying" if row.attempts else "queued"
    return row.state


def _view(alert: Alert) -> AlertView:
    return AlertView(
        id=int(alert.id or 0), key=alert.key, rule=alert.rule, rule_kind=alert.rule_kind,
        severity=alert.severity, scope=alert.scope, name=alert.name, state=alert.state,
        since=alert.since, fired_at=alert.fired_at, value=alert.value,
        threshold=alert.threshold, summary=alert.summary, muted_by=alert.muted_by,
        acked_by=alert.acked_by, acked_at=alert.acked_at, ack_comment=alert.ack_comment,
    )


def _delivery(row: Notification, attempts: list[DeliveryAttempt]) -> DeliveryView:
    last = attempts[-1] if attempts else None
    return DeliveryView(
        notifier=row.notifier, kind=row.kind, state=delivery_state(row),
        attempts=row.attempts, created_at=row.created_at, sent_at=row.sent_at,
        due_at=row.due_at, error=row.last_error or (last.error if last else None),
        http_status=last.http_status if last else None,
    )


def alert_views(
    session: Session,
    *,
    now: float,
    scope: str | None = None,
    name: str | None = None,
    with_deliveries: bool = True,
) -> list[AlertView]:
    """Pending and firing alerts in alerts.queries' worst-first order, those still needing a
    person (not acknowledged, not muted) ahead of the others."""
    views = [_view(a) for a in open_alerts(session, scope=scope, name=name)]
    if not views:
        return views
    notes_by_alert = deliveries(session, alert_ids=[v.id for v in views]) if with_deliveries else {}
    for alert_id, notes in notes_by_alert.items():
        view = next(v for v in views if v.id == alert_id)
        start = view.since if view.fired_at is None else min(view.fired_at, view.since)
        view.deliveries = [
            _delivery(n, attempts) for n, attempts in notes if n.created_at >= start
        ][:MAX_DELIVERIES]
    _attach_silences(views, list_silences(session, now=now, include_expired=False), now)
    views.sort(key=lambda v: 1 if (v.acked_by or v.silenced) else 0)  # stable: keeps the rest
    return views


def _attach_silences(views: Iterable[AlertView], silences: list[Silence], now: float) -> None:
    active = [s for s in silences if is_active(s, now)]
    for view in views:
        view.silences = [
            SilenceView(int(s.id or 0), s.ends_at, s.created_by, s.comment)
            for s in active
            if matches(s, rule=view.rule, scope=view.scope, name=view.name)
        ]


STATUS_ORDER = {"firing": 0, "silenced": 1, "pending": 2}


def scope_statuses(alerts: Iterable[AlertView]) -> dict[tuple[str, str], str]:
    """The worst status each scope's open alerts give it: firing > silenced > pending."""
    worst: dict[tuple[str, str], str] = {}
    for alert in alerts:
        key = (alert.scope, alert.name)
        status = alert.scope_status
        if key not in worst or STATUS_ORDER[status] < STATUS_ORDER[worst[key]]:
            worst[key] = status
    return worst

