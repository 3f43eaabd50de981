"""One batch in one transaction on a DBAPI connection, retried on deadlocks and busy locks.

Shared by the writer's own process (storage.writer_child) and by in-process commits, so it
imports no more than the drivers do: the child process starts on this alone.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from contextlib import AbstractContextManager
from typing import Any

from hookwatch.storage.batch import BatchResult, Cursor, NewEvent, commit_batch

Connection = Callable[[], AbstractContextManager[Any]]
"""Lends a DBAPI connection (sqlite3 or psycopg) for one attempt."""


def commit_events(
    connection: Connection,
    events: Sequence[NewEvent],
    *,
    now: float,
    dialect: str,
    retries: int,
    retried: list[str],
    journal: str | None = None,
    then: Callable[[Cursor], None] | None = None,
) -> BatchResult:
    """Commit the batch; each retry's reason (SQLSTATE or error name) is appended to retried.

    journal: as storage.batch.commit_batch's. then: more statements for the same transaction
    (a tally's flush), run after the batch's."""
    attempt = 0
    while True:
        attempt += 1
        try:
            with connection() as raw:
                return _commit_once(raw, events, now=now, dialect=dialect, journal=journal,
                                    then=then)
        except Exception as exc:
            if attempt >= retries or not retryable(exc):
                raise
            orig = getattr(exc, "orig", exc)
            retried.append(getattr(orig, "sqlstate", None) or type(orig).__name__)
            time.sleep(0.01 * attempt)


def _commit_once(
    raw: Any, events: Sequence[NewEvent], *, now: float, dialect: str, journal: str | None,
    then: Callable[[Cursor], None] | None,
) -> BatchResult:
    cursor = raw.cursor()
    try:
        result = commit_batch(cursor, events, now=now, dialect=dialect, journal=journal)
        if then is not None:
            then(cursor)
        raw.commit()
    except BaseException:
        raw.rollback()
        raise
    finally:
        cursor.close()
    return result


def retryable(exc: BaseException) -> bool:
    """A deadlock, a serialisation failure or a busy SQLite lock: trying again can succeed."""
    orig = getattr(exc, "orig", exc)  # SQLAlchemy wraps the driver's error
    code = getattr(orig, "sqlstate", None)
    if code in ("40001", "40P01"):  # serialization_failure, deadlock_detected
        return True
    return "database is locked" in str(orig)
