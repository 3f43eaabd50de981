"""Alembic migrations on both databases: models and migrations agree; serve refuses old schemas."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from alembic import command
from alembic.migration import MigrationContext
from fastapi.testclient import TestClient
from sqlalchemy import Engine, inspect, text
from sqlmodel import SQLModel

from hookwatch.app import create_app
from hookwatch.cli import main
from hookwatch.startup import schema_problem
from hookwatch.storage import packed
from hookwatch.storage.engine import make_engine
from hookwatch.storage.migrate import (
    alembic_config,
    head_revision,
    heads,
    import_tables,
    schema_differences,
    upgrade,
)
from hookwatch.storage.revision import (
    HEAD,
    SchemaOutdated,
    advisory_key,
    current_revision,
    is_current,
    require_current,
)
from tests.conftest import ManualClock, free_port, make_settings
from tests.test_imports import loaded

ROOT = Path(__file__).resolve().parents[2]
HOOKWATCH = [sys.executable, "-m", "hookwatch"]


@pytest.fixture
def bare(db_url: str) -> Iterator[Engine]:
    """An engine on an empty database: no tables, no migration history."""
    engine = make_engine(db_url)
    yield engine
    engine.dispose()


def test_upgrade_from_empty_matches_the_models(bare: Engine) -> None:
    """Fails when a model changed without a migration: run `python -m storage.migrate
    revision -m "…"`, review the script, and commit it."""
    assert current_revision(bare) is None
    assert not is_current(bare)
    steps: list[str] = []
    before, after = upgrade(bare, on_step=lambda info: steps.append(info.up_revision_id or ""))
    assert (before, after) == (None, head_revision())
    assert steps[-1] == head_revision()
    assert is_current(bare)
    with bare.connect() as conn:
        assert schema_differences(conn) == []
    assert upgrade(bare) == (head_revision(), head_revision())  # a second run does nothing


def test_downgrade_to_empty_and_back(bare: Engine) -> None:
    """Every script's downgrade undoes its upgrade (a bad release can be rolled back)."""
    upgrade(bare)
    with bare.begin() as conn:
        command.downgrade(alembic_config(conn), "base")
    with bare.connect() as conn:
        assert set(inspect(conn).get_table_names()) <= {"alembic_version"}
    assert current_revision(bare) is None
    upgrade(bare)
    assert is_current(bare)


def test_the_revision_read_without_alembic_is_alembics(bare: Engine) -> None:
    """storage.revision's HEAD and its plain read of alembic_version agree with Alembic's own,
    one step back too (a new migration must move HEAD with it)."""
    assert heads() == {HEAD}
    upgrade(bare)
    with bare.begin() as conn:
        command.downgrade(alembic_config(conn), "-1")
    previous = current_revision(bare)
    assert previous is not None and previous != HEAD
    with bare.connect() as conn:
        assert MigrationContext.configure(conn).get_current_heads() == (previous,)
    assert not is_current(bare)
    with pytest.raises(SchemaOutdated, match=f"at revision {previous}.* needs {HEAD}"):
        require_current(bare)
    upgrade(bare)
    require_current(bare)


def test_a_schema_that_drifted_is_reported(bare: Engine) -> None:
    upgrade(bare)
    with bare.begin() as conn:
        conn.execute(text("ALTER TABLE events ADD COLUMN stray INTEGER"))
        conn.execute(text("DROP INDEX ix_events_received_at"))
    with bare.connect() as conn:
        diffs = schema_differences(conn)
    kinds = {d[0] if isinstance(d, tuple) else d[0][0] for d in diffs}
    assert {"remove_column", "add_index"} <= kinds


def test_an_unversioned_database_matching_the_models_is_adopted(bare: Engine) -> None:
    import_tables()
    SQLModel.metadata.create_all(bare)
    assert upgrade(bare) == (None, head_revision())
    assert is_current(bare)


def test_an_unversioned_database_that_differs_is_refused(bare: Engine) -> None:
    import_tables()
    SQLModel.metadata.create_all(bare)
    with bare.begin() as conn:
        conn.execute(text("DROP INDEX ix_events_received_at"))
    with pytest.raises(SchemaOutdated, match="no migration history"):
        upgrade(bare)
    assert current_revision(bare) is None


def test_readyz_says_outdated_when_the_database_is_behind(
    db_url: str, bare: Engine, clock: ManualClock
) -> None:
    app = create_app(make_settings(db_url), clock=clock, run_jobs=False)
    with TestClient(app) as client:
        assert client.get("/readyz").json()["checks"]["migrations"] == "current"
        with bare.begin() as conn:
            conn.execute(text("UPDATE alembic_version SET version_num = '0000'"))
        answer = client.get("/readyz")
    assert answer.status_code == 503
    assert answer.json()["checks"]["migrations"] == "outdated"


def test_sqlite_migrates_by_itself_at_start(sqlite_url: str, clock: ManualClock) -> None:
    settings = make_settings(sqlite_url, auto_migrate=None)
    with TestClient(create_app(settings, clock=clock, run_jobs=False)) as client:
        assert client.get("/readyz").json()["checks"]["migrations"] == "current"


def test_postgres_app_refuses_an_outdated_schema(postgres_url: str, clock: ManualClock) -> None:
    settings = make_settings(postgres_url, auto_migrate=None)
    app = create_app(settings, clock=clock, run_jobs=False)
    with pytest.raises(SchemaOutdated, match="run `hookwatch migrate`"), TestClient(app):
        pass


def _env(url: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("HOOKWATCH_")}
    env["HOOKWATCH_DATABASE_URL"] = url
    return env


def test_serve_command_refuses_an_outdated_schema(
    postgres_url: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    for name in [k for k in os.environ if k.startswith("HOOKWATCH_")]:
        monkeypatch.delenv(name)
    monkeypatch.setenv("HOOKWATCH_DATABASE_URL", postgres_url)
    assert main(["serve", "--port", str(free_port())]) == 1  # before uvicorn starts
    refusal = capsys.readouterr().err
    assert "schema is at revision none (empty database)" in refusal
    assert "run `hookwatch migrate`" in refusal


def test_serve_migrates_in_a_child_process(db_url: str) -> None:
    """Alembic and Mako (and Mako's Pygments plugin: 8 MiB together) stay out of the server
    that runs for weeks."""
    check = ("from hookwatch.settings import Settings\n"
             f"assert schema_problem(Settings(database_url={db_url!r}, auto_migrate=True)) is None")
    packages = loaded("hookwatch.startup", then="from hookwatch.startup import schema_problem\n"
                      + check, env=_env(db_url))
    assert not packages & {"alembic", "mako"}
    engine = make_engine(db_url)
    try:
        assert is_current(engine)
    finally:
        engine.dispose()


def test_a_failed_migration_at_start_is_a_refusal_with_its_reason(sqlite_url: str) -> None:
    engine = make_engine(sqlite_url)
    with engine.begin() as conn:  # a revision this version does not know: a newer hookwatch's
        conn.execute(text("CREATE TABLE alembic_version (version_num VARCHAR(32) PRIMARY KEY)"))
        conn.execute(text("INSERT INTO alembic_version VALUES ('9999')"))
    engine.dispose()
    refusal = schema_problem(make_settings(sqlite_url, auto_migrate=True))
    assert refusal is not None
    assert refusal.startswith("the schema migration failed, nothing changed (")
    assert "9999" in refusal


def test_migrate_waits_for_a_concurrent_migration(
    postgres_url: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """While another `migrate` holds the migration lock, the command waits; then it applies
    the schema; a second run finds nothing to do."""
    engine = make_engine(postgres_url)
    try:
        with engine.connect() as other:
            key = advisory_key(other, "migrate")
            other.execute(text("SELECT pg_advisory_lock(:k)"), {"k": key})
            run = subprocess.Popen([*HOOKWATCH, "migrate"], env=_env(postgres_url), cwd=ROOT,
                                   stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
            waiting = ("SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' "
                       "AND NOT granted AND classid = :hi AND objid = :lo")
            deadline = time.monotonic() + 30
            while not other.execute(text(waiting),
                                    {"hi": key >> 32, "lo": key & 0xFFFF_FFFF}).scalar_one():
                assert run.poll() is None, run.communicate()
                assert time.monotonic() < deadline, "migrate never waited for the lock"
                time.sleep(0.05)
            assert current_revision(engine) is None  # it waits before touching anything
            other.execute(text("SELECT pg_advisory_unlock(:k)"), {"k": key})
            out, err = run.communicate(timeout=60)
        assert run.returncode == 0, err
        assert f"applied  {head_revision()}" in out
        assert "postgresql+psycopg://postgres@" in out
        assert is_current(engine)
    finally:
        engine.dispose()
    for name in [k for k in os.environ if k.startswith("HOOKWATCH_")]:
        monkeypatch.delenv(name)
    monkeypatch.setenv("HOOKWATCH_DATABASE_URL", postgres_url)
    assert main(["migrate"]) == 0
    assert f"schema is up to date (revision {head_revision()})" in capsys.readouterr().out


PACKAGES = ("hookwatch", "hooks", "storage", "alerts", "notifiers", "dashboard")
_LIST_TABLES = """
import importlib, sys
from hookwatch.storage.migrate import metadata
listed = set(metadata().tables)
for module in sys.argv[1:]:
    importlib.import_module(module)
missing = sorted(set(metadata().tables) - listed)
print(",".join(missing))
"""


def test_import_tables_reaches_every_table() -> None:
    """A fresh interpreter: the tables import_tables() registers are all the tables any module
    defines. A module left out would escape the migrations and the comparison above."""
    modules = sorted(
        ".".join(("hookwatch", *path.relative_to(ROOT).with_suffix("").parts))
        for package in PACKAGES
        for path in (ROOT / package).rglob("*.py")
        if "table=True" in path.read_text() and "migrations" not in path.parts
    )
    assert "hookwatch.storage.tables" in modules
    found = subprocess.run([sys.executable, "-c", _LIST_TABLES, *modules], cwd=ROOT,
                           capture_output=True, text=True, timeout=60, check=True)
    assert found.stdout.strip() == "", f"add to storage.migrate.import_tables(): {found.stdout}"


def test_bucket_tables_lose_their_rowid_keeping_their_rows(sqlite_url: str) -> None:
    """0005 (SQLite): the rows and the index survive the copy, both ways."""
    engine = make_engine(sqlite_url)
    try:
        with engine.begin() as conn:
            command.upgrade(alembic_config(conn), "0004")
            conn.execute(text(
                "INSERT INTO outcome_buckets VALUES (60, 1795000000, 'model', 'acme/a', 3, 1, 0, "
                "0, 0, 4.5, 4)"))
            conn.execute(text(
                "INSERT INTO latency_buckets VALUES (60, 1795000000, 'model', 'acme/a', "
                "'predict', 21, 4)"))

        def shape() -> tuple[list[str], list[tuple[object, ...]], list[tuple[object, ...]]]:
            with engine.connect() as conn:
                sql = [conn.execute(text("SELECT sql FROM sqlite_master WHERE name = :n"),
                                    {"n": n}).scalar_one()
                       for n in ("outcome_buckets", "latency_buckets",
                                 "ix_outcome_buckets_scope")]
                return (sql, list(conn.execute(text("SELECT * FROM outcome_buckets"))),
                        list(conn.execute(text("SELECT * FROM latency_buckets"))))

        before = shape()
        with engine.begin() as conn:
            command.upgrade(alembic_config(conn), "0005")
        after = shape()
        assert all("WITHOUT ROWID" in s for s in after[0][:2])
        assert after[1:] == before[1:] == (
            [(60, 1795000000, "model", "acme/a", 3, 1, 0, 0, 0, 4.5, 4)],
            [(60, 1795000000, "model", "acme/a", "predict", 21, 4)])
        with engine.begin() as conn:
            command.downgrade(alembic_config(conn), "0004")
        back = shape()
        assert not any("WITHOUT ROWID" in s for s in back[0]) and back[1:] == before[1:]
    finally:
        engine.dispose()


_LATENCY_ROWS = [  # resolution, start, scope, name, metric, bin, count
    (60, 1795000000, "model", "acme/a", "predict", 21, 4),
    (60, 1795000000, "model", "acme/a", "queue", 3, 2),
    (60, 1795000000, "model", "acme/a", "total", 63, 1),
    (3600, 1794999600, "model", "acme/a", "predict", 21, 4),
    (60, 1795000060, "deployment", "acme/orphan", "predict", 0, 7),  # no outcome row
]


def test_latency_bins_are_packed_into_their_bucket_rows_and_back(db_url: str) -> None:
    """0008: every latency row lands in its outcome row's packed histogram (a row without one
    gets a zero outcome row), the schema matches the models, the upsert adds histograms in
    the database, and the downgrade gives the same rows back."""
    engine = make_engine(db_url)
    try:
        with engine.begin() as conn:
            command.upgrade(alembic_config(conn), "0007")
            for row in {r[:4] for r in _LATENCY_ROWS[:4]}:
                conn.execute(text(
                    "INSERT INTO outcome_buckets VALUES (:r, :s, :sc, :n, 3, 1, 0, 0, 0, 4.5, 4)"),
                    dict(zip(("r", "s", "sc", "n"), row, strict=True)))
            for row in _LATENCY_ROWS:
                conn.execute(text("INSERT INTO latency_buckets VALUES "
                                  "(:r, :s, :sc, :n, :m, :b, :c)"),
                             dict(zip(("r", "s", "sc", "n", "m", "b", "c"), row, strict=True)))
        upgrade(engine)
        with engine.connect() as conn:
            assert schema_differences(conn) == []
            assert "latency_buckets" not in inspect(conn).get_table_names()
            rows = {tuple(r[:4]): (r[4], packed.unpack(r[5])) for r in conn.execute(text(
                "SELECT resolution, start, scope, name, failed, latency FROM outcome_buckets"))}
        assert rows == {
            (60, 1795000000, "model", "acme/a"): (1, {"21": 4, "67": 2, "191": 1}),
            (3600, 1794999600, "model", "acme/a"): (1, {"21": 4}),
            (60, 1795000060, "deployment", "acme/orphan"): (0, {"0": 7}),
        }
        with engine.begin() as conn:  # the database's own hookwatch_hist_add, NULL included
            for latency in ('{"21":1,"5":2}', None):
                conn.execute(text(
                    "INSERT INTO outcome_buckets VALUES (60, 1795000000, 'model', 'acme/a', "
                    "0, 0, 0, 0, 0, 0, 0, :l) ON CONFLICT (resolution, start, scope, name) DO "
                    "UPDATE SET latency = hookwatch_hist_add(outcome_buckets.latency, "
                    "excluded.latency)"), {"l": latency})
            added = conn.execute(text(
                "SELECT latency FROM outcome_buckets WHERE resolution = 60 AND "
                "start = 1795000000")).scalar_one()
        assert packed.unpack(added) == {"21": 5, "67": 2, "191": 1, "5": 2}
        with engine.begin() as conn:
            command.downgrade(alembic_config(conn), "0007")
            back = sorted(tuple(r) for r in conn.execute(text(
                "SELECT resolution, start, scope, name, metric, bin, count FROM latency_buckets")))
            assert "latency" not in {c["name"] for c in inspect(conn).get_columns(
                "outcome_buckets")}
        assert back == sorted([  # the first row's bins with the upsert's added
            (60, 1795000000, "model", "acme/a", "predict", 21, 5),
            (60, 1795000000, "model", "acme/a", "predict", 5, 2),
            *_LATENCY_ROWS[1:],
        ])
    finally:
        engine.dispose()

