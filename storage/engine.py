"""One engine factory for SQLite (WAL, foreign keys on) and PostgreSQL (psycopg 3)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from sqlalchemy import Engine, create_engine, event
from sqlalchemy.engine import URL, make_url

from hookwatch.storage import packed
from hookwatch.storage.writer_child import ChildConfig

# Room for every power-of-two variant of the writer's statements (storage.batch).
SQLITE_CONNECT_ARGS = {"check_same_thread": False, "timeout": 30, "cached_statements": 256}


WRITER_TEMP_STORE = "PRAGMA temp_store=MEMORY"
"""The writer's statement journals stay in memory. SQLite keeps, per statement, an undo copy
of the pages it changes that predate the transaction, and spills one over 64 KiB to a
temporary file opened, written and closed inside the statement; a batch's upserts of random
prediction ids pass that. With it, bench_batch.py's completed-20 writes 44 → 32 KB and 17.5
→ 13 write calls per event (https://www.sqlite.org/tempfiles.html#statement_journals). The
writer's connection only: elsewhere it would keep the dashboard's large sorts in memory too."""

CHECKPOINT_EVERY = 300
"""Events the writer process commits between WAL checkpoints: some 1,500 pages for terminal
webhooks with logs, near SQLite's default of 1,000 (bench/README.md)."""

BUSY_TIMEOUT = 30.0
"""Seconds a statement waits for another connection's write lock before "database is locked".
Senders do not wait that long: a stalled commit answers them 503 after a few seconds
(storage.health); the commit itself keeps waiting, so it lands the moment the lock is free."""


def sqlite_pragmas(synchronous: str, busy_timeout: float = BUSY_TIMEOUT) -> list[str]:
    """Run on every SQLite connection. WAL: readers never block the single writer
    (https://www.sqlite.org/wal.html)."""
    sync = synchronous.upper()
    if sync not in ("FULL", "NORMAL"):
        raise ValueError("sqlite_synchronous must be FULL or NORMAL")
    return [
        "PRAGMA journal_mode=WAL",
        f"PRAGMA synchronous={sync}",
        "PRAGMA foreign_keys=ON",
        f"PRAGMA busy_timeout={int(busy_timeout * 1000)}",
    ]


def in_memory(url: str | URL) -> bool:
    """An in-memory SQLite database: it lives in the process that opened it, and no other
    process (the writer's, a migration's) can reach it."""
    url = make_url(url)
    return url.get_backend_name() == "sqlite" and (
        not url.database or url.database == ":memory:" or url.query.get("mode") == "memory")


def writer_process_config(
    engine: Engine, *, sqlite_synchronous: str = "FULL", retries: int = 3,
    sqlite_busy_timeout: float = BUSY_TIMEOUT,
) -> ChildConfig | None:
    """How the writer's own process connects to this engine's database; None when it cannot
    (an in-memory SQLite database lives in this process only)."""
    if engine.dialect.name == "sqlite":
        database = engine.url.database
        if database is None or in_memory(engine.url):
            return None
        # The child checkpoints between batches rather than inside a commit (writer_child).
        setup = [*sqlite_pragmas(sqlite_synchronous, sqlite_busy_timeout),
                 "PRAGMA wal_autocheckpoint=0", WRITER_TEMP_STORE]
        return ChildConfig("sqlite", [database], dict(SQLITE_CONNECT_ARGS), setup, retries,
                           tally=True, checkpoint_every=CHECKPOINT_EVERY)
    args, kwargs = engine.dialect.create_connect_args(engine.url)
    # SQLAlchemy's own type adapters stay here: the writer binds plain values only.
    kwargs = {k: v for k, v in kwargs.items() if k != "context"}
    return ChildConfig(engine.dialect.name, list(args), kwargs, [], retries)


def make_engine(
    url: str, *, sqlite_synchronous: str = "FULL", echo: bool = False,
    sqlite_busy_timeout: float = BUSY_TIMEOUT,
) -> Engine:
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite":
        if parsed.database and parsed.database != ":memory:":
            Path(parsed.database).parent.mkdir(parents=True, exist_ok=True)
        engine = create_engine(
            url, echo=echo, connect_args=SQLITE_CONNECT_ARGS, pool_size=8, max_overflow=8
        )
        pragmas = sqlite_pragmas(sqlite_synchronous, sqlite_busy_timeout)

        @event.listens_for(engine, "connect")
        def _pragmas(dbapi_conn: Any, _record: Any) -> None:
            cur = dbapi_conn.cursor()
            for pragma in pragmas:
                cur.execute(pragma)
            cur.close()
            packed.register(dbapi_conn)

        return engine
    if parsed.get_backend_name() == "postgresql":
        return create_engine(url, echo=echo, pool_pre_ping=True, pool_size=10, max_overflow=10)
    raise ValueError(f"unsupported database URL scheme: {parsed.get_backend_name()}")


def redacted(url: str) -> str:
    """The URL as it may be printed: the password hidden."""
    return make_url(url).render_as_string(hide_password=True)
