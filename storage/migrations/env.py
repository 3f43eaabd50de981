"""Alembic environment: migrations run on the connection storage.migrate hands over.

Run by `hookwatch migrate` / `storage.migrate.upgrade` (which pass a connection inside a
transaction) and by the `alembic -c storage/migrations/alembic.ini …` developer command line
(which reads HOOKWATCH_DATABASE_URL).
"""

from __future__ import annotations

import os

from alembic import context
from sqlalchemy import Connection
from sqlmodel import SQLModel

from hookwatch.storage.migrate import import_tables, migration_options

config = context.config
import_tables()
target_metadata = SQLModel.metadata


def run(connection: Connection) -> None:
    context.configure(
        connection=connection,
        target_metadata=target_metadata,
        on_version_apply=config.attributes.get("on_step", ()),
        **migration_options(connection.dialect.name),
    )
    with context.begin_transaction():
        context.run_migrations()


def main() -> None:
    connection = config.attributes.get("connection")
    if connection is not None:
        run(connection)
        return
    from hookwatch.storage.engine import make_engine

    # The developer command line: storage sits below the shell's Settings, so it reads the one
    # variable it needs itself (the default is Settings.database_url's).
    url = os.environ.get("HOOKWATCH_DATABASE_URL", "sqlite:///./data/hookwatch.db")
    if context.is_offline_mode():
        dialect = url.split(":", 1)[0].split("+", 1)[0]
        context.configure(
            url=url,
            target_metadata=target_metadata,
            literal_binds=True,
            **migration_options(dialect),
        )
        with context.begin_transaction():
            context.run_migrations()
        return
    engine = make_engine(url)
    try:
        with engine.connect() as conn:
            run(conn)
            conn.commit()
    finally:
        engine.dispose()


main()
