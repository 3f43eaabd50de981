"""Schema creation and upgrade."""

from __future__ import annotations

from sqlalchemy import Engine
from sqlmodel import SQLModel


def import_tables() -> None:
    """Every package's tables, so the metadata is complete."""
    import notifiers.outbox  # noqa: F401
    import storage.tables  # noqa: F401


def upgrade(engine: Engine) -> None:
    import_tables()
    SQLModel.metadata.create_all(engine)


def is_current(engine: Engine) -> bool:
    return True
