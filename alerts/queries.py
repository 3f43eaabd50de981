"""Keyword-only reads of alert state: open and recent alerts, deliveries, status per scope."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Literal

from sqlmodel import Session, col, select

from hookwatch.alerts.state import FIRING, OPEN, PENDING
from hookwatch.storage.rates import ScopeKey, window_counts
from hookwatch.storage.tables import Alert, AlertTransition, DeliveryAttempt, Notification, Silence

ScopeStatus = Literal["ok", "pending", "firing", "silenced", "no data"]
SEVERITY_RANK = {"critical": 0, "error": 1, "warning": 2, "info": 3}


def _worst_first(alert: Alert) -> tuple[int, int, float]:
    return (0 if alert.state == FIRING else 1, SEVERITY_RANK.get(alert.severity, 9),
            -(alert.fired_at or alert.since))


def open_alerts(session: Session, *, scope: str | None = None, name: str | None = None
                ) -> list[Alert]:
    """Pending and firing alerts, firing first, then by severity, newest first."""
    query = select(Alert).where(col(Alert.state).in_(OPEN))
    if scope is not None:
        query = query.where(Alert.scope == scope)
    if name is not None:
        query = query.where(Alert.name == name)
    return sorted(session.exec(query), key=_worst_first)


def recent_alerts(session: Session, *, since: float, limit: int = 50) -> list[Alert]:
    """Open alerts, then those resolved since `since` (newest first)."""
    resolved = session.exec(
        select(Alert).where(Alert.state == "resolved", col(Alert.resolved_at) >= since)
        .order_by(col(Alert.resolved_at).desc()).limit(limit)
    )
    return open_alerts(session) + list(resolved)


def get_alert(session: Session, *, alert_id: int) -> Alert | None:
    return session.get(Alert, alert_id)


def deliveries(
    session: Session, *, alert_ids: Iterable[int], limit_per_alert: int = 20
) -> dict[int, list[tuple[Notification, list[DeliveryAttempt]]]]:
    """Each alert's notifications (newest first) with their delivery attempts (oldest first)."""
    ids = sorted(set(alert_ids))
    if not ids:
        return {}
    found: dict[int, list[Notification]] = {}
    query = select(Notification).where(col(Notification.alert_id).in_(ids)).order_by(
        col(Notification.id).desc())
    for row in session.exec(query):
        kept = found.setdefault(row.alert_id, [])
        if len(kept) < limit_per_alert:
            kept.append(row)
    wanted = [n.id for rows in found.values() for n in rows if n.id is not None]
    attempts: dict[int, list[DeliveryAttempt]] = {}
    if wanted:
        query_attempts = select(DeliveryAttempt).where(
            col(DeliveryAttempt.notification_id).in_(wanted)).order_by(col(DeliveryAttempt.id))
        for attempt in session.exec(query_attempts):
            attempts.setdefault(attempt.notification_id, []).append(attempt)
    return {
        alert_id: [(n, attempts.get(n.id or 0, [])) for n in rows]
        for alert_id, rows in found.items()
    }


def transitions(session: Session, *, alert_id: int, limit: int = 50) -> list[AlertTransition]:
    query = select(AlertTransition).where(AlertTransition.alert_id == alert_id).order_by(
        col(AlertTransition.at).desc(), col(AlertTransition.id).desc()).limit(limit)
    return list(session.exec(query))


def list_silences(session: Session, *, now: float, include_expired: bool = True,
                  limit: int = 200) -> list[Silence]:
    """Active and pending silences first (ending soonest first), then expired, newest first."""
    current = list(session.exec(select(Silence).where(Silence.ends_at > now)
                                .order_by(col(Silence.ends_at), col(Silence.id))))
    if not include_expired:
        return current
    expired = session.exec(select(Silence).where(Silence.ends_at <= now)
                           .order_by(col(Silence.ends_at).desc()).limit(limit))
    return current + list(expired)


def _status_of(alerts: Iterable[Alert], has_data: bool) -> ScopeStatus:
    states = {(a.state, (a.muted_by or "").startswith("silence")) for a in alerts}
    if (FIRING, False) in states:
        return "firing"
    if (FIRING, True) in states:
        return "silenced"
    if any(state == PENDING for state, _ in states):
        return "pending"
    return "ok" if has_data else "no data"


def scope_statuses(
    session: Session, *, now: float, window_seconds: float = 3600.0,
    scopes: Iterable[ScopeKey] | None = None,
) -> dict[ScopeKey, ScopeStatus]:
    """firing > silenced (firing under a silence) > pending > ok; "no data" when a scope had
    no finished prediction in the window. Inhibited alerts still count as firing: the scope is
    failing. Without `scopes`: every scope with data in the window or an alert row."""
    wanted = set(scopes) if scopes is not None else None
    if wanted is not None and not wanted:
        return {}
    counts = window_counts(session, now=now, window_seconds=window_seconds)
    query = select(Alert).where(col(Alert.state).in_(OPEN))
    by_scope: dict[ScopeKey, list[Alert]] = {}
    if wanted is not None:
        query = query.where(col(Alert.name).in_(sorted({name for _, name in wanted})))
    for alert in session.exec(query):
        by_scope.setdefault((alert.scope, alert.name), []).append(alert)
    keys = wanted if wanted is not None else set(counts) | set(by_scope) | {
        (a.scope, a.name) for a in session.exec(select(Alert))}
    return {key: _status_of(by_scope.get(key, []), key in counts) for key in keys}
