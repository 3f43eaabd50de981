"""What each process loads: resident memory is a target (bench/README.md), and an import
pulled in by accident costs megabytes in every process that starts."""

from __future__ import annotations

import subprocess
import sys

import pytest

REPORT = "import sys; print(' '.join(sorted({m.split('.')[0] for m in sys.modules})))"


def loaded(module: str, *, then: str = "", env: dict[str, str] | None = None) -> set[str]:
    """The top-level packages a fresh interpreter holds after importing `module` (and running
    the statements `then`, in the environment `env` if given)."""
    code = "\n".join([f"import {module}", then, REPORT])
    out = subprocess.run([sys.executable, "-c", code], check=True, capture_output=True,
                         text=True, timeout=120, env=env)
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


def test_hmac_secrets_load_no_public_key_cryptography() -> None:
    """cryptography (8.5 MB resident) verifies whpk_ (ed25519) signatures only; Replicate signs
    with whsec_ (HMAC), which the standard library checks."""
    verify_one = """
from hookwatch.hooks.signature import Verifier, sign
secret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
headers = {"webhook-id": "msg_1", "webhook-timestamp": "1700000000",
           "webhook-signature": sign(secret, "msg_1", 1700000000, b"{}")}
assert Verifier([secret], None).verify(headers, b"{}", 1700000000.0).webhook_id == "msg_1"
"""
    assert "cryptography" not in loaded("hookwatch.app", then=verify_one)
    assert "cryptography" in loaded("hookwatch.hooks.signature", then=verify_one.replace(
        "Verifier([secret], None)",
        "Verifier([secret, 'whpk_' + 'A' * 43 + '='], None)"))
