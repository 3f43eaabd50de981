"""Alert rows in and out of the database: the evaluator lock, states, silences, outbox rows."""

from __future__ import annotations

import orjson
from sqlalchemy import Connection, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlmodel import Session, col, select

from hookwatch.alerts.state import AlertState
from hookwatch.notifiers.message import AlertMessage
from hookwatch.storage.tables import Alert, EvaluatorLock, Notification, Prediction, Silence


def ensure_lock_row(conn: Connection) -> None:
    """The evaluator row exists (idempotent, safe when several processes start at once)."""
    dialect = postgresql if conn.dialect.name == "postgresql" else sqlite
    conn.execute(
        dialect.insert(EvaluatorLock.__table__)  # type: ignore[attr-defined]
        .values(id=1, evaluated_at=0.0, runs=0)
        .on_conflict_do_nothing(index_elements=["id"])
    )


def take_lock(session: Session, now: float, *, evaluation: bool = True) -> float:
    """Lock the evaluator row for this transaction; returns `now`, never before the last
    evaluation (clocks of replicas differ a little; the state machine must not go back).

    Writes are the transaction's first statements: on SQLite they take the database's write
    lock before anything is read, on PostgreSQL the UPDATE row-locks; so the states read next
    are those the previous evaluator (or acknowledgement) committed.
    """
    ensure_lock_row(session.connection())
    row = col(EvaluatorLock.id) == 1
    session.exec(update(EvaluatorLock).where(row).values(runs=col(EvaluatorLock.runs) + 1))
    last = float(session.exec(select(EvaluatorLock.evaluated_at).where(row)).one())
    if evaluation and now > last:
        session.exec(update(EvaluatorLock).where(row).values(evaluated_at=now))
    return max(now, last)


def load_alerts(session: Session) -> list[Alert]:
    return list(session.exec(select(Alert).order_by(col(Alert.id))))


def to_state(row: Alert) -> AlertState:
    return AlertState(
        rule=row.rule, scope=row.scope, name=row.name, state=row.state, since=row.since,
        episode=row.episode, fired_at=row.fired_at, clear_since=row.clear_since,
        resolved_at=row.resolved_at, value=row.value, muted_by=row.muted_by,
        notified=row.notified, last_notified_at=row.last_notified_at, acked_by=row.acked_by,
    )


def apply_state(row: Alert, state: AlertState) -> None:
    """Copy the pure state onto the row; a new episode clears the acknowledgement."""
    if state.episode != row.episode:
        row.acked_at = None
        row.ack_comment = None
    for name in ("state", "since", "episode", "fired_at", "clear_since", "resolved_at", "value",
                 "muted_by", "notified", "last_notified_at", "acked_by"):
        setattr(row, name, getattr(state, name))


def active_silences(session: Session, *, now: float) -> list[Silence]:
    query = select(Silence).where(Silence.ends_at > now, Silence.starts_at <= now)
    return list(session.exec(query.order_by(col(Silence.id))))


def deployment_models(session: Session, *, deployments: set[str], now: float
                      ) -> dict[str, set[str]]:
    """Which models the given deployments serve, from their predictions.

    Cheapest first (the predictions table has no deployment index, on purpose): failures of
    the last hour through (status, counted_at), then unfinished ones through (rank,
    first_seen_at); only deployments still unknown read the last day's finished predictions.
    """
    found: dict[str, set[str]] = {}
    pairs = select(Prediction.deployment, Prediction.model).where(
        col(Prediction.model).is_not(None)).distinct()
    queries = [
        lambda names: pairs.where(Prediction.status == "failed",
                                  col(Prediction.counted_at) >= now - 3600,
                                  col(Prediction.deployment).in_(names)),
        lambda names: pairs.where(col(Prediction.rank).in_((0, 1)),
                                  col(Prediction.deployment).in_(names)),
        lambda names: pairs.where(col(Prediction.status).in_(("succeeded", "failed")),
                                  col(Prediction.counted_at) >= now - 86400,
                                  col(Prediction.deployment).in_(names)),
    ]
    for query in queries:
        missing = sorted(deployments - found.keys())
        if not missing:
            break
        for deployment, model in session.exec(query(missing)):
            if deployment is not None and model is not None:
                found.setdefault(deployment, set()).add(model)
    return found


class ModelMap:
    """deployment -> models, remembered for `ttl` seconds: a deployment rarely changes model,
    and the lookup reads predictions."""

    def __init__(self, *, ttl: float = 600.0) -> None:
        self.ttl = ttl
        self._known: dict[str, tuple[float, set[str]]] = {}

    def lookup(self, session: Session, *, deployments: set[str], now: float
               ) -> dict[str, set[str]]:
        stale = {d for d in deployments
                 if d not in self._known or not 0 <= now - self._known[d][0] < self.ttl}
        if stale:
            found = deployment_models(session, deployments=stale, now=now)
            for deployment in stale:
                self._known[deployment] = (now, found.get(deployment, set()))
        return {d: self._known[d][1] for d in deployments}


def add_notifications(
    session: Session, *, alert: Alert, message: AlertMessage, notifiers: tuple[str, ...],
    suppressed: bool, now: float,
) -> list[Notification]:
    """The outbox rows, one per notifier, in the caller's transaction."""
    payload = orjson.dumps(message.to_json()).decode()
    rows = [
        Notification(
            alert_id=alert.id or 0, alert_key=alert.key, notifier=notifier, kind=message.kind,
            payload=payload, state="suppressed" if suppressed else "pending", created_at=now,
            due_at=now,
        )
        for notifier in notifiers
    ]
    session.add_all(rows)
    return rows


def notified_channels(session: Session, *, alert_id: int) -> set[str]:
    """Notifiers that were sent (not suppressed) a trigger for this alert."""
    query = select(Notification.notifier).where(
        Notification.alert_id == alert_id, Notification.kind == "trigger",
        Notification.state != "suppressed",
    )
    return set(session.exec(query.distinct()))

