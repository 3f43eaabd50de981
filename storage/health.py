"""Whether commits get through: the writer's stall and failure record, and what to say of it.

A commit can hang rather than fail: another process holding SQLite's write lock keeps ours in
the busy handler (up to busy_timeout per try, storage.engine), a PostgreSQL lock waits without
end. The sender must not wait with it: a sender retries a 503 (Replicate retries terminal
webhooks for about a minute, https://replicate.com/docs/topics/webhooks/receive-webhook), so
once a commit has been under way `stall_after` seconds every waiting request is answered 503
and new ones are refused at once, until a commit ends. /readyz reads the same record.
"""

from __future__ import annotations

import itertools
import sqlite3
import sys
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from sqlalchemy import Engine

STALL_AFTER = 3.0
"""Seconds a commit may take before waiting requests get their 503; a healthy commit takes
milliseconds (bench/README.md), and the issue's goal is a 503 within 5 s of a stuck one."""


@dataclass(frozen=True, slots=True)
class CommitState:
    ready: bool
    detail: str  # for /readyz and the log: "ok", "stalled: ...", "failing: ..."
    probe: bool = False  # nothing is in flight to tell: a write probe may


@dataclass
class CommitHealth:
    """Kept by the writer on the event loop; read by /readyz from a worker thread (plain
    attribute reads). Times are the caller's monotonic clock, passed in."""

    stall_after: float = STALL_AFTER
    _in_flight: dict[int, float] = field(default_factory=dict)  # batch token -> began at
    _tokens: itertools.count[int] = field(default_factory=itertools.count)
    failure: str | None = None  # why the last commit failed, until one succeeds
    stalled: bool = False  # set by the writer's watch, cleared when a commit ends

    def began(self, now: float) -> int:
        token = next(self._tokens)
        self._in_flight[token] = now
        return token

    def ended(self, token: int, failure: str | None) -> None:
        """A batch is answered: committed (failure None) or not (its reason)."""
        self._in_flight.pop(token, None)
        self.failure = failure
        self.stalled = False

    def stalled_for(self, now: float) -> float | None:
        """Seconds the oldest commit in flight has taken, once that is past stall_after."""
        if not self._in_flight:
            return None
        age = now - min(tuple(self._in_flight.values()))  # read from /readyz's thread too
        return age if age >= self.stall_after else None

    def recovered(self) -> None:
        """A write probe got the lock: the next commit is expected to pass."""
        if not self._in_flight:
            self.failure = None

    def state(self, now: float) -> CommitState:
        age = self.stalled_for(now)
        if age is not None:
            return CommitState(False, f"stalled: a commit has waited {age:.0f} s")
        if self.failure is not None:
            return CommitState(False, f"failing: {self.failure}", probe=not self._in_flight)
        return CommitState(True, "ok")


def probe_write(engine: Engine, timeout: float = 0.5) -> str | None:
    """Try to take the write lock for a moment (SQLite: BEGIN IMMEDIATE; PostgreSQL: a round
    trip); None when it could, else why not. Run by /readyz only while commits are failing
    and none is in flight, so a quiet service becomes ready again without a webhook."""
    try:
        raw = engine.raw_connection()
    except Exception as exc:
        return unavailable_reason(exc) or type(exc).__name__
    try:
        cursor = raw.cursor()
        try:
            if engine.dialect.name == "sqlite":
                configured = int(cursor.execute("PRAGMA busy_timeout").fetchall()[0][0])
                cursor.execute(f"PRAGMA busy_timeout={int(timeout * 1000)}")
                try:
                    cursor.execute("BEGIN IMMEDIATE")
                    cursor.execute("ROLLBACK")
                finally:
                    cursor.execute(f"PRAGMA busy_timeout={configured}")
            else:
                cursor.execute("SELECT 1")
                raw.rollback()
        finally:
            cursor.close()
    except Exception as exc:
        return unavailable_reason(exc) or type(exc).__name__
    finally:
        raw.close()
    return None


def unavailable_reason(exc: BaseException) -> str | None:
    """One line saying why the database refused (locked, unreachable, disk full), when the
    error is about the database rather than our code; None for anything else (a bug, which
    deserves its traceback). The driver's first line only: it names no values.

    The writer process calls this too, and starts on the driver alone (storage.transaction):
    a library that was never imported cannot have raised, so neither is imported here."""
    sa_exc: Any = sys.modules.get("sqlalchemy.exc")
    orig: Any = exc.orig if sa_exc is not None and isinstance(exc, sa_exc.DBAPIError) else exc
    if isinstance(orig, sqlite3.OperationalError) or _is_psycopg_operational(orig):
        first = str(orig).strip().splitlines()[0] if str(orig).strip() else ""
        return f"{type(orig).__name__}: {first[:200]}" if first else type(orig).__name__
    return None


def error_line(exc: BaseException) -> str:
    """The error's type and the first line of what the driver said (SQLAlchemy's wrapper adds
    the statement and its parameters on later lines; those stay out of messages)."""
    said = str(getattr(exc, "orig", None) or exc).strip()
    return f"{type(exc).__name__}: {said.splitlines()[0]}" if said else type(exc).__name__


def _is_psycopg_operational(exc: BaseException) -> bool:
    psycopg: Any = sys.modules.get("psycopg")
    return psycopg is not None and isinstance(exc, psycopg.OperationalError)
