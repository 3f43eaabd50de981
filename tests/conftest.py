"""Shared fixtures: a manual clock, real SQLite files (and PostgreSQL), the app, signed requests."""

from __future__ import annotations

import os
import socket
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
import uvicorn
from fastapi import FastAPI
from fastapi.testclient import TestClient
from sqlalchemy import Engine, create_engine, text

from hookwatch.app import create_app
from hookwatch.config import Config
from hookwatch.hooks.signature import sign
from hookwatch.settings import Settings
from hookwatch.storage.engine import make_engine
from hookwatch.storage.migrate import upgrade

FIXTURES = Path(__file__).parent / "fixtures"
SECRET = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
TOKEN = "cog-ingest-token-for-tests"
POSTGRES_URL = os.environ.get(
    "HOOKWATCH_TEST_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test"
)


class ManualClock:
    """A clock the test moves; logic under test never sleeps."""

    def __init__(self, start: float = 1_795_000_000.0) -> None:
        self.now = start

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> float:
        self.now += seconds
        return self.now


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock()


def fixture_bytes(name: str) -> bytes:
    return (FIXTURES / name).read_bytes()


@pytest.fixture
def sqlite_url(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path}/hookwatch.db"


def _postgres_available() -> bool:
    try:
        engine = create_engine(POSTGRES_URL)
        with engine.connect() as conn:
            conn.execute(text("SELECT 1"))
        engine.dispose()
        return True
    except Exception:
        return False


@pytest.fixture
def postgres_url() -> Iterator[str]:
    """A fresh schema on the real PostgreSQL server, dropped afterwards."""
    if not _postgres_available():
        if os.environ.get("CI"):
            pytest.fail(f"PostgreSQL is not reachable at {POSTGRES_URL}")
        pytest.skip("PostgreSQL is not reachable")
    schema = "t_" + uuid.uuid4().hex[:12]
    admin = create_engine(POSTGRES_URL, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f"CREATE SCHEMA {schema}"))
    sep = "&" if "?" in POSTGRES_URL else "?"
    yield f"{POSTGRES_URL}{sep}options=-csearch_path%3D{schema}"
    with admin.connect() as conn:
        conn.execute(text(f"DROP SCHEMA {schema} CASCADE"))
    admin.dispose()


@pytest.fixture(params=["sqlite", "postgres"])
def db_url(request: pytest.FixtureRequest) -> str:
    """Runs a test on both databases."""
    name = "sqlite_url" if request.param == "sqlite" else "postgres_url"
    url: str = request.getfixturevalue(name)
    return url


@contextmanager
def migrated_engine(url: str) -> Iterator[Engine]:
    """An engine on a schema brought to head, as `hookwatch migrate` leaves it; disposed after."""
    engine = make_engine(url)
    upgrade(engine)
    try:
        yield engine
    finally:
        engine.dispose()


@pytest.fixture
def engine(db_url: str) -> Iterator[Engine]:
    """A migrated engine, on SQLite and on the real PostgreSQL (the test runs on both)."""
    with migrated_engine(db_url) as eng:
        yield eng


@pytest.fixture
def sqlite_engine(sqlite_url: str) -> Iterator[Engine]:
    with migrated_engine(sqlite_url) as eng:
        yield eng


@pytest.fixture
def pg_engine(postgres_url: str) -> Iterator[Engine]:
    with migrated_engine(postgres_url) as eng:
        yield eng


def make_settings(database_url: str, **overrides: Any) -> Settings:
    values: dict[str, Any] = {
        "database_url": database_url,
        "webhook_secrets": [SECRET],
        "ingest_token": TOKEN,
        "auto_migrate": True,
        "allowed_hosts": ["testserver"],  # TestClient's Host (the dashboard checks Host)
    }
    values.update(overrides)
    return Settings(**values)


@pytest.fixture
def app_factory(sqlite_url: str, clock: ManualClock) -> Callable[..., FastAPI]:
    def factory(
        database_url: str | None = None, config: Config | None = None, **overrides: Any
    ) -> FastAPI:
        settings = make_settings(database_url or sqlite_url, **overrides)
        return create_app(settings, clock=clock, config=config, run_jobs=False)

    return factory


@pytest.fixture
def client(app_factory: Callable[..., FastAPI]) -> Iterator[TestClient]:
    with TestClient(app_factory()) as test_client:
        yield test_client


def signed_headers(
    body: bytes,
    *,
    secret: str = SECRET,
    msg_id: str | None = None,
    timestamp: float | None = None,
) -> dict[str, str]:
    msg_id = msg_id or "msg_" + uuid.uuid4().hex
    ts = int(timestamp if timestamp is not None else time.time())
    return {
        "content-type": "application/json",
        "webhook-id": msg_id,
        "webhook-timestamp": str(ts),
        "webhook-signature": sign(secret, msg_id, ts, body),
    }


def token_headers(token: str = TOKEN) -> dict[str, str]:
    return {"content-type": "application/json", "authorization": f"Bearer {token}"}


def until(condition: Callable[[], Any], timeout: float = 15.0, what: str = "condition") -> float:
    """Poll real state (another process, the database, a thread: no clock to inject) until
    `condition` holds; seconds taken."""
    began = time.monotonic()
    while not condition():
        if time.monotonic() - began > timeout:
            raise AssertionError(f"{what} not met within {timeout} s")
        time.sleep(0.05)
    return time.monotonic() - began


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


class LiveServer:
    """The app served by a real uvicorn on a free port, in a thread."""

    def __init__(self, app: FastAPI, port: int | None = None) -> None:
        self.port = port or free_port()  # given: the app was built knowing its URL
        self.url = f"http://127.0.0.1:{self.port}"
        self.server = uvicorn.Server(
            uvicorn.Config(app, host="127.0.0.1", port=self.port, log_level="warning")
        )
        self.thread = threading.Thread(target=self.server.run, daemon=True)

    def __enter__(self) -> LiveServer:
        self.thread.start()
        deadline = time.monotonic() + 10
        while not self.server.started:
            if time.monotonic() > deadline:
                raise RuntimeError("uvicorn did not start")
            time.sleep(0.02)
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=10)
