"""Schema migrations with Alembic: upgrade to head, tell whether a database is current.

The migration scripts live in storage/migrations (shipped in the package). `upgrade` runs them
in one transaction (PostgreSQL has transactional DDL), under an advisory lock so replicas that
start `hookwatch migrate` at once apply each step once. New tables go in
storage/tables.py; tests/storage/test_migrations.py fails while a model and the migrations differ.

Developers add a revision with `python -m storage.migrate revision -m "what changed"`.
"""

from __future__ import annotations

import argparse
import functools
import sys
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Literal

from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.config import Config
from alembic.migration import MigrationContext, MigrationInfo
from alembic.script import ScriptDirectory
from sqlalchemy import Connection, Engine, inspect, text
from sqlmodel import SQLModel
from sqlmodel.sql.sqltypes import AutoString

from hookwatch.storage.revision import SchemaOutdated, advisory_key, current

MIGRATIONS = Path(__file__).parent / "migrations"

OnStep = Callable[[MigrationInfo], None]


def import_tables() -> None:
    """Every table, so the metadata is complete (they all live in storage.tables)."""
    import hookwatch.storage.tables  # noqa: F401


def metadata() -> Any:
    import_tables()
    return SQLModel.metadata


def _render_item(type_: str, obj: Any, _autogen: Any) -> str | Literal[False]:
    """Render SQLModel's AutoString as a plain sa.String, so scripts need no sqlmodel import."""
    if type_ == "type" and isinstance(obj, AutoString):
        return f"sa.String(length={obj.length})" if obj.length else "sa.String()"
    return False


def migration_options(dialect: str) -> dict[str, Any]:
    """context.configure options shared by env.py and the comparison."""
    return {
        "compare_type": True,
        "render_item": _render_item,
        # SQLite cannot ALTER most things; batch mode copies the table instead.
        # https://alembic.sqlalchemy.org/en/latest/batch.html
        "render_as_batch": dialect == "sqlite",
    }


def alembic_config(
    connection: Connection | None = None, *, on_step: OnStep | None = None
) -> Config:
    config = Config(str(MIGRATIONS / "alembic.ini"))
    if connection is not None:
        config.attributes["connection"] = connection
    if on_step is not None:
        config.attributes["on_step"] = lambda *, step, **_: on_step(step)
    return config


@functools.cache
def heads() -> frozenset[str]:
    """The revisions this version of hookwatch expects (one, unless branches were merged)."""
    return frozenset(ScriptDirectory.from_config(alembic_config()).get_heads())


def head_revision() -> str | None:
    return next(iter(sorted(heads())), None)


def schema_differences(conn: Connection) -> list[Any]:
    """Alembic's diff between the database and the models; [] when they agree."""
    context = MigrationContext.configure(conn, opts=migration_options(conn.dialect.name))
    diffs: list[Any] = compare_metadata(context, metadata())
    return diffs


@contextmanager
def _migration_lock(conn: Connection) -> Iterator[None]:
    if conn.dialect.name == "postgresql":
        # Held until the transaction ends: a second `migrate` waits, then finds nothing to do.
        conn.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": advisory_key(conn, "migrate")})
    yield


def _adopt_unversioned(conn: Connection) -> None:
    """A database made by create_all before Alembic: stamp it when it matches the models."""
    ours = set(metadata().tables)
    if not ours & set(inspect(conn).get_table_names()):
        return
    diffs = schema_differences(conn)
    if diffs:
        raise SchemaOutdated(
            "the database has hookwatch tables but no migration history, and they differ from "
            f"this version's models ({len(diffs)} differences, first: {diffs[0]!r})"
        )
    command.stamp(alembic_config(conn), "head")


def upgrade(engine: Engine, *, on_step: OnStep | None = None) -> tuple[str | None, str | None]:
    """Bring the schema to head in one transaction; returns (revision before, revision after)."""
    metadata()
    with engine.begin() as conn, _migration_lock(conn):
        before = current(conn)
        if not before:
            _adopt_unversioned(conn)
        command.upgrade(alembic_config(conn, on_step=on_step), "heads")
        after = current(conn)
    return next(iter(sorted(before)), None), next(iter(sorted(after)), None)


def make_revision(message: str) -> Path:
    """Autogenerate the next revision: upgrade a scratch SQLite to head, diff against models."""
    from hookwatch.storage.engine import make_engine

    script = ScriptDirectory.from_config(alembic_config())
    number = len(list(script.walk_revisions())) + 1
    with tempfile.TemporaryDirectory() as scratch:
        engine = make_engine(f"sqlite:///{scratch}/scratch.db")
        try:
            upgrade(engine)
            with engine.begin() as conn:
                revision = command.revision(
                    alembic_config(conn), message=message, autogenerate=True,
                    rev_id=f"{number:04d}",
                )
        finally:
            engine.dispose()
    scripts = revision if isinstance(revision, list) else [revision]
    return Path(scripts[0].path) if scripts and scripts[0] is not None else MIGRATIONS


def _upgrade_from_stdin() -> int:
    """`serve`'s migration, in a process of its own so that Alembic, Mako and Pygments (8 MiB)
    never load into the long-lived server (hookwatch.startup). The URL comes on stdin: a
    password on the command line would show in `ps`."""
    from sqlalchemy.exc import SQLAlchemyError

    from hookwatch.storage.engine import make_engine
    from hookwatch.storage.health import error_line

    engine = make_engine(sys.stdin.read().strip())
    try:
        before, after = upgrade(engine)
    except (SQLAlchemyError, SchemaOutdated) as exc:
        print(error_line(exc), file=sys.stderr)
        return 1
    finally:
        engine.dispose()
    print(f"{before or 'empty'} {after}")
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m storage.migrate")
    sub = parser.add_subparsers(dest="command", required=True)
    rev = sub.add_parser("revision", help="autogenerate the next migration from the models")
    rev.add_argument("-m", "--message", required=True)
    sub.add_parser("upgrade", help="upgrade the database whose URL is on stdin to head")
    args = parser.parse_args(argv)
    if args.command == "upgrade":
        return _upgrade_from_stdin()
    path = make_revision(args.message)
    print(f"wrote {path}: review it (portable types, no data loss) before committing")
    return 0


if __name__ == "__main__":
    sys.exit(main())
