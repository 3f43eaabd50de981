"""The schema revision a database is at and the one this version needs, read without Alembic.

The web process checks the revision when it starts and on every /readyz; Alembic and its
templates (storage.migrate) are some 10 MB of imports, loaded only when a migration runs.
tests/storage/test_migrations.py holds HEAD to Alembic's own head.
"""

from __future__ import annotations

import hashlib

from sqlalchemy import Connection, Engine, inspect, text

HEAD = "0008"
"""The last migration in storage/migrations/versions."""
VERSION_TABLE = "alembic_version"  # Alembic's default, in the connection's default schema


class SchemaOutdated(Exception):
    """The database is behind (or ahead of) this version's migrations."""


def current(conn: Connection) -> frozenset[str]:
    """The revisions the database says it is at; empty for a database never migrated."""
    if not inspect(conn).has_table(VERSION_TABLE):
        return frozenset()
    return frozenset(r[0] for r in conn.execute(text(f"SELECT version_num FROM {VERSION_TABLE}")))


def current_revision(engine: Engine) -> str | None:
    with engine.connect() as conn:
        return next(iter(sorted(current(conn))), None)


def is_current(engine: Engine) -> bool:
    """True when the database is at this version's head (readyz reports it)."""
    with engine.connect() as conn:
        return current(conn) == {HEAD}


def require_current(engine: Engine) -> None:
    """Raise SchemaOutdated, with what to do, unless the schema is at head."""
    with engine.connect() as conn:
        revisions = current(conn)
    if revisions == {HEAD}:
        return
    have = next(iter(sorted(revisions)), None)
    raise SchemaOutdated(
        f"the database schema is at revision {have or 'none (empty database)'}, this version "
        f"of hookwatch needs {HEAD}: run `hookwatch migrate` (with the same "
        "HOOKWATCH_DATABASE_URL) before starting the service"
    )


def advisory_key(conn: Connection, purpose: str) -> int:
    """A PostgreSQL advisory lock key for this database and schema.

    Scoped by schema so separate installations (and parallel tests) in one database never share
    a lock. Non-negative, so pg_locks' (classid, objid) halves are plain unsigned parts.
    """
    database, schema = conn.execute(text("SELECT current_database(), current_schema()")).one()
    digest = hashlib.sha256(f"hookwatch:{purpose}:{database}:{schema}".encode()).digest()
    return int.from_bytes(digest[:8], "big") & 0x7FFF_FFFF_FFFF_FFFF
