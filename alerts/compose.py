"""The AlertMessage an outbox row carries, composed from an alert row and its verdict."""

from __future__ import annotations

import orjson
from sqlmodel import Session

from hookwatch.alerts.rules import Rule
from hookwatch.notifiers.message import AlertMessage, Kind, TopError
from hookwatch.storage.rates import top_fingerprints
from hookwatch.storage.tables import Alert

_ERROR_KINDS = ("error_rate", "burn_rate")


def alert_url(base_url: str, alert_id: int | None) -> str:
    """The HTML alert page (dashboard/alert_page.py): people open it, never the JSON."""
    return f"{base_url}/alerts/{alert_id}"


def top_errors(session: Session, *, alert: Alert, since: float, limit: int = 3
               ) -> list[TopError]:
    """The biggest failure groups behind an error alert ("37 x CUDA out of memory ...")."""
    if alert.rule_kind not in _ERROR_KINDS:
        return []
    return [
        TopError(fingerprint=g.fingerprint, count=g.count, example=g.example[:500])
        for g in top_fingerprints(session, since=since, scope=alert.scope, name=alert.name,
                                  limit=limit)
    ]


def compose(
    alert: Alert,
    *,
    kind: Kind,
    now: float,
    base_url: str,
    rule: Rule | None = None,
    errors: list[TopError] | None = None,
) -> AlertMessage:
    prefix = {"resolve": "RESOLVED", "acknowledge": "ACKNOWLEDGED"}.get(kind, "FIRING")
    where = f"{alert.scope} {alert.name}"
    window = rule.message_window() if rule is not None else None
    return AlertMessage(
        kind=kind,
        alert_key=alert.key,
        alert_id=alert.id or 0,
        rule=alert.rule,
        rule_kind=alert.rule_kind,
        severity=alert.severity,
        scope=alert.scope,
        scope_name=alert.name,
        summary=f"[{prefix}] {alert.rule} on {where}: {alert.summary}",
        started_at=alert.fired_at if alert.fired_at is not None else alert.since,
        at=now,
        value=alert.value,
        threshold=alert.threshold,
        window_seconds=window,
        counts={k: int(v) for k, v in orjson.loads(alert.counts or "{}").items()},
        top_errors=errors or [],
        resolved_at=alert.resolved_at,
        acknowledged_by=alert.acked_by,
        acknowledge_comment=alert.ack_comment,
        dashboard_url=f"{base_url}/",
        alert_url=alert_url(base_url, alert.id),
    )
