"""The outbox's SQL: claim due rows under a lease, record attempts, release, suppress, postpone."""

from __future__ import annotations

import logging
from collections.abc import Collection
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Connection, Engine, Table, exists, func, insert, literal, select, update
from sqlmodel import SQLModel

from hookwatch.notifiers.health import Outcome, note
from hookwatch.storage.tables import DeliveryAttempt, Notification

log = logging.getLogger("hookwatch.notifiers")

NOTIFICATIONS: Table = SQLModel.metadata.tables[Notification.__tablename__]
ATTEMPTS: Table = SQLModel.metadata.tables[DeliveryAttempt.__tablename__]
# `sending` extends the outbox's states: claimed by a worker until due_at (the lease) passes.
OPEN_STATES = ("pending", "sending")
# A claimed row is someone else's to retry only after this; far longer than one batch of sends
# (at most 10 rows, each bounded by its notifier's timeout of at most 60 s per step).
LEASE_SECONDS = 600.0


@dataclass(frozen=True)
class Claimed:
    id: int
    alert_key: str
    notifier: str
    kind: str
    payload: str
    created_at: float
    due_at: float  # before the claim
    attempts: int


def claim(
    engine: Engine, *, now: float, limit: int, exclude: set[str], lease: float = LEASE_SECONDS,
    only: Collection[str] | None = None,
) -> list[Claimed]:
    """Take due rows whose earlier rows (same alert and notifier) are all settled; of the
    notifiers in `only`, when given, and never of those in `exclude`.

    PostgreSQL: FOR UPDATE SKIP LOCKED lets replicas claim side by side. SQLite has one
    writer; the compare-and-set UPDATE below keeps two workers from taking one row there.
    """
    n, p = NOTIFICATIONS, NOTIFICATIONS.alias("p")
    earlier_open = exists().where(
        p.c.alert_key == n.c.alert_key,
        p.c.notifier == n.c.notifier,
        p.c.id < n.c.id,
        p.c.state.in_(OPEN_STATES),
    )
    stmt = select(n).where(n.c.state.in_(OPEN_STATES), n.c.due_at <= now, ~earlier_open)
    if exclude:
        stmt = stmt.where(n.c.notifier.not_in(sorted(exclude)))
    if only is not None:
        stmt = stmt.where(n.c.notifier.in_(sorted(only)))
    stmt = stmt.order_by(n.c.due_at, n.c.id).limit(limit).with_for_update(skip_locked=True, of=n)
    claimed: list[Claimed] = []
    with engine.begin() as conn:
        for row in conn.execute(stmt).mappings().all():
            taken = conn.execute(
                update(n)
                .where(n.c.id == row["id"], n.c.state == row["state"], n.c.due_at == row["due_at"])
                .values(state="sending", due_at=now + lease)
            )
            if taken.rowcount == 1:
                claimed.append(Claimed(
                    id=row["id"], alert_key=row["alert_key"], notifier=row["notifier"],
                    kind=row["kind"], payload=row["payload"], created_at=row["created_at"],
                    due_at=row["due_at"], attempts=row["attempts"],
                ))
    return claimed


def episode(engine: Engine, row: Claimed) -> list[Any]:
    """This alert's trigger and reminder rows on this notifier since its last resolution."""
    n = NOTIFICATIONS
    same = (n.c.alert_key == row.alert_key, n.c.notifier == row.notifier, n.c.id < row.id)
    with engine.connect() as conn:
        last_resolve = conn.execute(
            select(func.max(n.c.id)).where(*same, n.c.kind == "resolve")
        ).scalar()
        stmt = (
            select(n.c.id, n.c.kind, n.c.state, n.c.external_ref)
            .where(*same, n.c.kind.in_(("trigger", "reminder")), n.c.id > (last_resolve or 0))
            .order_by(n.c.kind != "trigger", n.c.id)
        )
        return list(conn.execute(stmt).mappings().all())


def record(
    engine: Engine,
    row: Claimed,
    *,
    now: float,
    state: str,
    outcome: str,
    error: str | None = None,
    due_at: float | None = None,
    http_status: int | None = None,
    duration_ms: float = 0.0,
    external_ref: str | None = None,
    health: Outcome | None = None,
    copy_to: str | None = None,
) -> None:
    """The row's new state and one DeliveryAttempt (and, after a send, the notifier's health
    record; with `copy_to`, a copy of the row for that notifier), in one transaction."""
    n = NOTIFICATIONS
    values: dict[str, Any] = {
        "state": state,
        "attempts": n.c.attempts + 1,
        "last_error": error,
        "due_at": due_at if due_at is not None else now,
    }
    if state == "sent":
        values["sent_at"] = now
        if external_ref:
            values["external_ref"] = external_ref[:200]
    with engine.begin() as conn:
        conn.execute(update(n).where(n.c.id == row.id).values(**values))
        conn.execute(insert(ATTEMPTS).values(
            notification_id=row.id, at=now, outcome=outcome, http_status=http_status,
            error=error, duration_ms=round(duration_ms, 3),
        ))
        if health is not None:
            note(conn, health, now=now)
        if copy_to is not None:
            _copy_to(conn, row.id, to=copy_to, now=now)


def _copy_to(conn: Connection, row_id: int, *, to: str, now: float) -> None:
    """A pending copy of an outbox row for notifier `to`, due now."""
    n = NOTIFICATIONS
    kept = [c for c in n.c if c.name not in ("id", "notifier", "state", "created_at", "due_at",
                                              "attempts", "sent_at", "last_error",
                                              "external_ref")]
    conn.execute(insert(n).from_select(
        [c.name for c in kept] + ["notifier", "state", "created_at", "due_at", "attempts"],
        select(*kept, literal(to), literal("pending"), literal(now), literal(now),
               literal(0)).where(n.c.id == row_id),
    ))


def reroute(engine: Engine, row: Claimed, *, to: str, reason: str, now: float) -> None:
    """Hand a claimed row to another notifier (a fallback) untried: this one fails with
    `reason`, a copy for `to` is due now, in one transaction."""
    n = NOTIFICATIONS
    with engine.begin() as conn:
        _copy_to(conn, row.id, to=to, now=now)
        conn.execute(update(n).where(n.c.id == row.id)
                     .values(state="failed", last_error=reason, due_at=now))
    log.warning("notification %s (%s) to %r handed to %r: %s", row.id, row.kind, row.notifier,
                to, reason)


def release(engine: Engine, row: Claimed, *, due_at: float) -> None:
    """Give a claimed row back untried."""
    n = NOTIFICATIONS
    with engine.begin() as conn:
        conn.execute(
            update(n).where(n.c.id == row.id, n.c.state == "sending")
            .values(state="pending", due_at=due_at)
        )


def suppress(engine: Engine, row: Claimed, reason: str) -> None:
    n = NOTIFICATIONS
    with engine.begin() as conn:
        conn.execute(
            update(n).where(n.c.id == row.id).values(state="suppressed", last_error=reason)
        )
    log.info("notification %s (%s) to %r suppressed: %s", row.id, row.kind, row.notifier, reason)


def postpone(engine: Engine, *, notifier: str, until: float) -> None:
    """A failing receiver: the notifier's other waiting rows wait as long as the failed one."""
    n = NOTIFICATIONS
    with engine.begin() as conn:
        conn.execute(
            update(n).where(n.c.notifier == notifier, n.c.state == "pending", n.c.due_at < until)
            .values(due_at=until)
        )
