"""A batch that counted a failure NOTIFYs the leader's channel at commit; no other batch does."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from typing import Any, cast

import psycopg
import pytest
from sqlalchemy import Engine, create_engine, text
from sqlalchemy.engine import make_url

from hookwatch.storage.batch import FAILED_CHANNEL
from hookwatch.storage.engine import make_engine
from hookwatch.storage.migrate import upgrade
from hookwatch.storage.writer import Writer
from tests.conftest import POSTGRES_URL, ManualClock
from tests.storage.conftest import event

MODEL = "acme/sdxl"


class Listening:
    """A session that LISTENs to the failure channel of the engine's schema."""

    def __init__(self, engine: Engine) -> None:
        self.engine = create_engine(engine.url, isolation_level="AUTOCOMMIT")
        self.conn = self.engine.connect()
        self.channel = str(self.conn.execute(text(f"SELECT {FAILED_CHANNEL}")).scalar_one())
        self.conn.execute(text(f'LISTEN "{self.channel}"'))
        self.session = cast(psycopg.Connection[Any], self.conn.connection.dbapi_connection)

    def received(self, timeout: float = 0.3) -> list[str]:
        """The channels notified since the last call (a commit has delivered them already)."""
        return [n.channel for n in self.session.notifies(timeout=timeout)]

    def close(self) -> None:
        self.conn.close()
        self.engine.dispose()


@pytest.fixture
def listening(pg_engine: Engine) -> Iterator[Listening]:
    listener = Listening(pg_engine)
    yield listener
    listener.close()


def outcome(pid: str, status: str, key: str, at: float) -> Any:
    doc = {"id": pid, "status": status, "model": MODEL,
           "error": "CUDA out of memory" if status == "failed" else None}
    return event(doc, key=key, at=at)


@pytest.mark.postgres
def test_only_a_batch_that_counted_a_failure_notifies(
    pg_engine: Engine, listening: Listening, clock: ManualClock
) -> None:
    writer = Writer(pg_engine, clock=clock)
    assert listening.channel.startswith("hookwatch_failed_") and len(listening.channel) == 33

    writer.commit([outcome("p1", "starting", "k1", clock.now),
                   outcome("p2", "succeeded", "k2", clock.now),
                   outcome("p3", "canceled", "k3", clock.now)])
    assert listening.received() == []  # counted outcomes, none failed

    # Three failures in one transaction: one notification (NOTIFY collapses duplicates).
    result = writer.commit([outcome(f"f{i}", "failed", f"kf{i}", clock.advance(1))
                            for i in range(3)])
    assert [c.status for c in result.counted] == ["failed"] * 3
    assert listening.received() == [listening.channel]

    # A failure counted already (another event for a terminal prediction) is not counted again.
    writer.commit([outcome("f0", "failed", "kf0-again", clock.advance(1)),
                   outcome("p1", "processing", "k1b", clock.now)])
    assert listening.received() == []

    writer.commit([outcome("p1", "failed", "k1c", clock.advance(1))])
    assert listening.received() == [listening.channel]


@pytest.mark.postgres
def test_the_channel_is_scoped_to_the_schema(
    pg_engine: Engine, listening: Listening, postgres_url: str, clock: ManualClock
) -> None:
    """Another installation (schema) in the same database notifies a channel of its own."""
    schema = "t_" + uuid.uuid4().hex[:12]
    admin = create_engine(POSTGRES_URL, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f"CREATE SCHEMA {schema}"))
    url = make_url(postgres_url).update_query_dict({"options": f"-csearch_path={schema}"})
    other = make_engine(url.render_as_string(hide_password=False))
    try:
        upgrade(other)
        theirs = Listening(other)
        try:
            assert theirs.channel != listening.channel
            Writer(other, clock=clock).commit([outcome("x", "failed", "kx", clock.now)])
            assert theirs.received() == [theirs.channel]
            assert listening.received() == []
        finally:
            theirs.close()
    finally:
        other.dispose()
        with admin.connect() as conn:
            conn.execute(text(f"DROP SCHEMA {schema} CASCADE"))
        admin.dispose()


def test_sqlite_batches_issue_no_notify(sqlite_engine: Engine, clock: ManualClock) -> None:
    """pg_notify does not exist on SQLite: a counted failure commits there all the same."""
    result = Writer(sqlite_engine, clock=clock).commit([outcome("p", "failed", "k", clock.now)])
    assert [c.status for c in result.counted] == ["failed"]
