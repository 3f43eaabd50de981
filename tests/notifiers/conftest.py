"""Notifier fixtures: a migrated database engine on SQLite (and PostgreSQL where asked)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from sqlalchemy import Engine

from storage.engine import make_engine
from storage.migrate import upgrade


@pytest.fixture
def sqlite_engine(sqlite_url: str) -> Iterator[Engine]:
    engine = make_engine(sqlite_url)
    upgrade(engine)
    yield engine
    engine.dispose()


@pytest.fixture
def any_engine(db_url: str) -> Iterator[Engine]:
    """The same test on SQLite and on the real PostgreSQL."""
    engine = make_engine(db_url)
    upgrade(engine)
    yield engine
    engine.dispose()
