"""Leadership: which replica runs the leader-only jobs (evaluate, deliver, reconcile, prune).

On PostgreSQL the leader is the replica whose dedicated session holds a session-level advisory
lock (https://www.postgresql.org/docs/current/explicit-locking.html#ADVISORY-LOCKS). When that
process dies its session ends, the server frees the lock, and the next replica to poll takes it.
On SQLite the process holding a lock file beside the database leads (hookwatch/file_leader.py);
an in-memory database has one process, which always leads.

The lock is only as good as the session: a leader that cannot confirm its session for `lease`
seconds stops calling itself leader, well before the server (TCP keepalives below) drops the
session and lets another replica in, so two replicas never both act as leader.

While it leads, the same session LISTENs to the channels that `listen` names (a failure counted
by any replica's writer, storage/batch.py), so the leader's evaluator hears of it at commit.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Protocol, cast

from sqlalchemy import Connection, Engine, create_engine, text
from sqlalchemy.pool import NullPool

from hookwatch.file_leader import FileLockLeader
from hookwatch.storage.revision import advisory_key
from hookwatch.storage.sqlite_path import sqlite_file

if TYPE_CHECKING:
    import psycopg  # SQLite installations never load the driver

log = logging.getLogger("hookwatch.leader")

Listener = Callable[[bool], None]
Notified = Callable[[], None]

# How long the leader's thread waits on its session for notifications at a time: a notification
# is handed on as it arrives; this only bounds how long stop() waits for the thread.
_NOTIFY_WAIT = 0.2

# libpq keepalives: a leader cut off from the network notices within ~10 s; the server side is
# set per session (tcp_keepalives_*), so it drops a dead leader's session, and its lock, too.
# https://www.postgresql.org/docs/current/libpq-connect.html#LIBPQ-KEEPALIVES
_CONNECT_ARGS = {
    "connect_timeout": 5,
    "keepalives": 1,
    "keepalives_idle": 5,
    "keepalives_interval": 2,
    "keepalives_count": 3,
    "tcp_user_timeout": 10_000,
}
_SESSION_SETUP = (
    "SET tcp_keepalives_idle = 5",
    "SET tcp_keepalives_interval = 2",
    "SET tcp_keepalives_count = 3",
    "SET statement_timeout = '5s'",
)


def replica_name(port: int | None = None) -> str:
    """How this replica names itself in pg_stat_activity, /readyz and logs."""
    host = socket.gethostname()
    return f"{host}:{port}/pid {os.getpid()}" if port else f"{host}/pid {os.getpid()}"


class Leadership(Protocol):
    """What the jobs, /readyz and /metrics need to know."""

    @property
    def is_leader(self) -> bool: ...

    def start(self) -> None: ...

    def stop(self) -> None: ...

    def describe(self) -> dict[str, Any]: ...

    @property
    def status(self) -> dict[str, Any]: ...

    def subscribe(self, listener: Listener) -> None: ...

    def listen(self, channel_sql: str, handler: Notified) -> None: ...


class SoleLeader:
    """SQLite: one process, always the leader."""

    is_leader = True

    def __init__(self, name: str | None = None) -> None:
        self.name = name or replica_name()
        self.status = self.describe()

    def start(self) -> None:
        pass

    def stop(self) -> None:
        pass

    def subscribe(self, listener: Listener) -> None:
        listener(True)

    def listen(self, channel_sql: str, handler: Notified) -> None:
        """Nothing to hear: on SQLite the one process's writer tells its listeners itself."""

    def describe(self) -> dict[str, Any]:
        return {"role": "leader", "replica": self.name, "leader": self.name, "via": "sqlite"}


class AdvisoryLockLeader:
    """PostgreSQL: hold `pg_try_advisory_lock` on a dedicated session, polled every `poll` s."""

    def __init__(
        self,
        engine: Engine,
        *,
        name: str | None = None,
        poll: float = 1.0,
        lease: float | None = None,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self.name = name or replica_name()
        self.poll = poll
        self.lease = lease if lease is not None else max(3.0 * poll, 2.0)
        self._monotonic = monotonic
        # A dedicated session outside the pool, in autocommit so it never idles in a transaction.
        self._engine = create_engine(
            engine.url,
            poolclass=NullPool,
            isolation_level="AUTOCOMMIT",
            connect_args={**_CONNECT_ARGS, "application_name": f"hookwatch {self.name}"[:63]},
        )
        self._conn: Connection | None = None
        self._key: int | None = None
        self._held = False
        self._confirmed_at = float("-inf")
        self._holder: str | None = None
        self._listeners: list[Listener] = []
        self._handlers: list[tuple[str, Notified]] = []  # (channel as SQL, handler)
        self._channels: dict[str, str] = {}  # channel SQL -> name LISTENed on this session
        self._failing = False  # the session is down: said once, then retried quietly
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.acquired = 0  # times this replica became leader
        self.status: dict[str, Any] = self.describe()
        """Updated in place after every poll: /readyz shows it as it is now."""

    @property
    def is_leader(self) -> bool:
        return self._held and self._monotonic() - self._confirmed_at < self.lease

    def subscribe(self, listener: Listener) -> None:
        self._listeners.append(listener)

    def listen(self, channel_sql: str, handler: Notified) -> None:
        """While this replica leads, call `handler` (in the leader's thread; it must not block)
        on each NOTIFY on the channel that `channel_sql` names. Followers never listen.

        LISTEN runs on the lock's own session rather than on a connection of its own: the
        subscription lives and dies with leadership (a replica whose session is gone neither
        leads nor listens; a new leader listens before its jobs wake, so a failure committed
        in between is seen by their first run or notified), and no replica holds an extra
        connection. https://www.postgresql.org/docs/current/sql-listen.html
        """
        with self._lock:
            self._handlers.append((channel_sql, handler))
            if self._held and self._conn is not None:
                try:
                    self._listen_all(self._conn)
                except Exception:
                    log.debug("LISTEN failed; the next poll retries", exc_info=True)

    def start(self) -> None:
        """Try once now (a lone replica leads from its first request), then poll in a thread."""
        self.poll_once()
        self._stop.clear()
        self._thread = threading.Thread(target=self._run, name="hookwatch-leader", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        """Step down: release the lock at once, so a follower need not wait for a timeout."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=10)
            self._thread = None
        with self._lock:
            if self._conn is not None and self._held and self._key is not None:
                try:
                    self._conn.execute(text("SELECT pg_advisory_unlock(:k)"), {"k": self._key})
                except Exception as exc:
                    log.warning("could not release leadership cleanly: %s", type(exc).__name__)
            self._set_held(False)
            self._holder = None
            self._drop_connection()
            self.status.update(self.describe())
        self._engine.dispose()

    def _run(self) -> None:
        next_poll = time.monotonic() + self.poll
        while not self._stop.is_set():
            left = next_poll - time.monotonic()
            if left <= 0:
                self.poll_once()
                next_poll = time.monotonic() + self.poll
            elif not self._receive(min(left, _NOTIFY_WAIT)):
                self._stop.wait(min(left, _NOTIFY_WAIT))

    def poll_once(self) -> bool:
        """Confirm or try to take the lock; any database error means not leading."""
        with self._lock:
            try:
                conn = self._connection()
                if self._held:
                    conn.execute(text("SELECT 1"))
                    self._listen_all(conn)  # a channel whose LISTEN failed before
                    self._confirmed_at = self._monotonic()
                elif conn.execute(
                    text("SELECT pg_try_advisory_lock(:k)"), {"k": self._key}
                ).scalar_one():
                    # Listening and confirmed before the listeners run: the jobs they wake
                    # see a leader, and any failure committed after that is notified.
                    self._listen_all(conn)
                    self._confirmed_at = self._monotonic()
                    self._holder = self.name
                    self._set_held(True)
                else:
                    self._holder = self._read_holder(conn)
                if self._failing:
                    log.info("leadership session is back (%s)", self.name)
                    self._failing = False
            except Exception as exc:
                self._failed(exc)
            self.status.update(self.describe())
            return self.is_leader

    def _receive(self, timeout: float) -> bool:
        """While leading and listening, wait up to `timeout` s on the session for notifications
        and hand them on as they arrive; False (nothing waited) otherwise."""
        with self._lock:
            if not (self._held and self._channels and self._conn is not None):
                return False
            try:
                session = cast("psycopg.Connection[Any]", self._conn.connection.dbapi_connection)
                # Those that came in during a poll's query wait in psycopg's backlog.
                names = {n.channel for n in session.notifies(timeout=timeout, stop_after=1)}
            except Exception as exc:
                self._failed(exc)
                self.status.update(self.describe())
                return True
            leading = self.is_leader
            handlers = [h for sql, h in self._handlers if self._channels.get(sql) in names]
        for handler in handlers if leading else []:
            try:
                handler()
            except Exception:
                log.exception("a notification handler failed")
        return True

    def _listen_all(self, conn: Connection) -> None:
        for channel_sql, _handler in self._handlers:
            if channel_sql not in self._channels:
                name = str(conn.execute(text(f"SELECT {channel_sql}")).scalar_one())
                conn.execute(text(f'LISTEN "{name}"'))  # quoted: the name's case is kept
                self._channels[channel_sql] = name

    def _failed(self, exc: Exception) -> None:
        """Any database error means not leading; the next poll reconnects and retries."""
        if self._held:
            log.error("leadership lost: session check failed (%s)", type(exc).__name__)
        elif not self._failing:
            log.warning("leadership poll failed: %s; retrying every %s s quietly",
                        type(exc).__name__, self.poll)
        self._failing = True
        self._set_held(False)
        self._holder = None
        self._drop_connection()

    def describe(self) -> dict[str, Any]:
        return {
            "role": "leader" if self.is_leader else "follower",
            "replica": self.name,
            "leader": self._holder,
            "via": "postgresql advisory lock",
        }

    def _connection(self) -> Connection:
        if self._conn is None:
            conn = self._engine.connect()
            try:
                for statement in _SESSION_SETUP:
                    conn.execute(text(statement))
                self._key = advisory_key(conn, "leader")
            except Exception:
                conn.close()
                raise
            self._conn = conn
        return self._conn

    def _read_holder(self, conn: Connection) -> str | None:
        """The application_name of the session holding the lock (who leads), if visible."""
        assert self._key is not None
        row = conn.execute(
            text(
                "SELECT a.application_name FROM pg_locks l JOIN pg_stat_activity a USING (pid) "
                "WHERE l.locktype = 'advisory' AND l.granted AND l.objsubid = 1 "
                "AND l.database = (SELECT oid FROM pg_database WHERE datname = current_database()) "
                "AND l.classid = :hi AND l.objid = :lo"
            ),
            {"hi": self._key >> 32, "lo": self._key & 0xFFFF_FFFF},
        ).first()
        if row is None or not row[0]:
            return None
        name = str(row[0])
        return name.removeprefix("hookwatch ")

    def _drop_connection(self) -> None:
        if self._conn is not None:
            try:
                self._conn.invalidate()
                self._conn.close()
            except Exception:
                log.debug("closing a broken leadership session failed", exc_info=True)
            self._conn = None
        self._channels = {}  # a LISTEN ends with its session

    def _set_held(self, held: bool) -> None:
        if held == self._held:
            return
        self._held = held
        if held:
            self.acquired += 1
            log.info("this replica (%s) is now the leader", self.name)
        else:
            log.warning("this replica (%s) is no longer the leader", self.name)
        for listener in self._listeners:
            try:
                listener(held)
            except Exception:
                log.exception("a leadership listener failed")


def leadership_for(engine: Engine, *, name: str | None = None, poll: float = 1.0) -> Leadership:
    if engine.dialect.name == "postgresql":
        return AdvisoryLockLeader(engine, name=name, poll=poll)
    database = sqlite_file(str(engine.url))
    if database is None:  # in memory: nobody else can open it
        return SoleLeader(name)
    return FileLockLeader(database.with_name(database.name + ".leader"),
                          name=name or replica_name(), poll=poll)
