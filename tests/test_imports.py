"""What each process loads: resident memory is a target (bench/README.md), and an import
pulled in by accident costs megabytes in every process that starts."""

from __future__ import annotations

import subprocess
import sys

import pytest

PROBE = "import sys, {module}; print(' '.join(sorted({{m.split('.')[0] for m in sys.modules}})))"


def loaded(module: str) -> set[str]:
    """The top-level packages a fresh interpreter holds after importing `module`."""
    out = subprocess.run([sys.executable, "-c", PROBE.format(module=module)], check=True,
                         capture_output=True, text=True, timeout=60)
    return set(out.stdout.split())


def test_the_writer_process_starts_on_the_drivers_alone() -> None:
    """storage.transaction's promise: the child imports no SQLAlchemy, and no psycopg on a
    SQLite file (it imports the driver it connects with)."""
    packages = loaded("hookwatch.storage.writer_child")
    assert "hookwatch" in packages
    assert not packages & {"sqlalchemy", "psycopg", "sqlmodel", "pydantic"}


@pytest.mark.parametrize("module", ["hookwatch.app", "hookwatch.cli"])
def test_the_web_process_loads_no_migrations_or_postgres_driver(module: str) -> None:
    """Alembic is loaded when a migration runs, psycopg when the URL is PostgreSQL's: some
    20 MB the web process of a SQLite installation does not carry."""
    packages = loaded(module)
    assert "hookwatch" in packages
    assert not packages & {"alembic", "mako", "psycopg"}
