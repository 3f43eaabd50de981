"""A prediction's events listed on its row, the rest through the partial index (storage.batch)."""

from __future__ import annotations

from alembic import command
from sqlalchemy import Engine, text
from sqlmodel import Session

from hookwatch.storage.batch import LISTED_EVENTS
from hookwatch.storage.engine import make_engine
from hookwatch.storage.migrate import alembic_config, schema_differences, upgrade
from hookwatch.storage.queries import get_prediction, prediction_events, unlisted_events
from hookwatch.storage.writer import Writer
from tests.conftest import ManualClock
from tests.storage.conftest import event, prediction, scalar


def processing(pid: str, n: int) -> dict[str, object]:
    return {"id": pid, "status": "processing", "model": "acme/a", "logs": f"line {n}\n",
            "created_at": "2026-12-07T10:00:00Z"}


def stored(engine: Engine, pid: str) -> list[tuple[int, bool]]:
    """Every event of the prediction by a full scan, in the order received: (id, listed)."""
    with engine.connect() as conn:
        rows = conn.execute(text("SELECT id, listed FROM events WHERE prediction_id = :p "
                                 "ORDER BY received_at, id"), {"p": pid})
        return [(int(r[0]), bool(r[1])) for r in rows]


def found(engine: Engine, pid: str) -> list[int]:
    with Session(engine) as session:
        row = get_prediction(session, prediction_id=pid)
        assert row is not None
        return [e.id or 0 for e in prediction_events(session, prediction=row)]


def test_a_prediction_lists_its_events_on_its_row(engine: Engine, clock: ManualClock) -> None:
    writer = Writer(engine, clock=clock)
    writer.commit([event({"id": "p1", "status": "starting"}, key="id:1", at=clock.advance(1)),
                   event({"id": "p2", "status": "starting"}, key="id:2", at=clock.now)])
    writer.commit([event(processing("p1", 1), key="id:3", at=clock.advance(1)),
                   event({"id": "p1", "status": "starting"}, key="id:1", at=clock.now)])  # again
    writer.commit([event({"id": "p1", "status": "succeeded"}, key="id:4", at=clock.advance(1))])
    events = stored(engine, "p1")
    assert len(events) == 3 and all(listed for _, listed in events)
    assert prediction(engine, "p1")["event_ids"] == ",".join(str(i) for i, _ in sorted(events))
    assert found(engine, "p1") == [i for i, _ in events]
    assert found(engine, "p2") == [i for i, _ in stored(engine, "p2")]
    assert scalar(engine, "SELECT count(*) FROM events WHERE listed = false") == 0


def test_events_past_the_list_are_found_by_the_index(engine: Engine, clock: ManualClock) -> None:
    writer = Writer(engine, clock=clock)
    first = LISTED_EVENTS - 2
    writer.commit([event(processing("p1", n), key=f"id:a{n}", at=clock.advance(0.1))
                   for n in range(first)])
    writer.commit([event(processing("p1", n), key=f"id:b{n}", at=clock.advance(0.1))
                   for n in range(5)])  # would pass the list: none of these is listed
    writer.commit([event({"id": "p1", "status": "failed", "error": "boom"}, key="id:end",
                         at=clock.advance(0.1))])
    events = stored(engine, "p1")
    assert [listed for _, listed in events] == [True] * first + [False] * 6
    assert prediction(engine, "p1")["event_ids"].count(",") == first - 1
    assert found(engine, "p1") == [i for i, _ in events]
    # One batch larger than the list: nothing listed, everything indexed.
    writer.commit([event(processing("p2", n), key=f"id:c{n}", at=clock.advance(0.1))
                   for n in range(LISTED_EVENTS + 1)])
    assert prediction(engine, "p2")["event_ids"] is None
    assert [listed for _, listed in stored(engine, "p2")] == [False] * (LISTED_EVENTS + 1)
    assert found(engine, "p2") == [i for i, _ in stored(engine, "p2")]


def test_the_unlisted_lookup_reads_the_partial_index(engine: Engine) -> None:
    query = unlisted_events("p1").compile(engine, compile_kwargs={"literal_binds": True})
    with engine.begin() as conn:
        if engine.dialect.name == "sqlite":
            plan = " ".join(str(r[-1]) for r in conn.execute(text(f"EXPLAIN QUERY PLAN {query}")))
        else:
            conn.execute(text("SET LOCAL enable_seqscan = off"))  # a few rows: it would scan
            plan = " ".join(r[0] for r in conn.execute(text(f"EXPLAIN {query}")))
    assert "ix_events_unlisted_prediction" in plan, plan


def test_an_id_reused_after_pruning_is_not_shown(sqlite_engine: Engine, clock: ManualClock
                                                 ) -> None:
    """SQLite reuses the largest rowid once it is deleted: the list is checked against the
    prediction."""
    writer = Writer(sqlite_engine, clock=clock)
    writer.commit([event({"id": "old", "status": "succeeded"}, key="id:1", at=clock.now)])
    listed = prediction(sqlite_engine, "old")["event_ids"]
    with sqlite_engine.begin() as conn:
        conn.execute(text("DELETE FROM events"))
    writer.commit([event({"id": "new", "status": "succeeded"}, key="id:2", at=clock.now)])
    assert prediction(sqlite_engine, "new")["event_ids"] == listed
    assert found(sqlite_engine, "old") == []


def test_the_upgrade_indexes_old_events_and_marks_signed_predictions(db_url: str) -> None:
    """0007: events stored before it are found through the partial index; `signed` is set
    from them; the schema matches the models."""
    engine = make_engine(db_url)
    try:
        with engine.begin() as conn:
            command.upgrade(alembic_config(conn), "0006")
            for n, (pid, source) in enumerate([("p1", "signed"), ("p1", "signed"),
                                               ("p2", "token")]):
                conn.execute(text(
                    "INSERT INTO events (dedup_key, prediction_id, status, source, received_at, "
                    "headers, body) VALUES (:k, :p, 'processing', :s, :at, '{}', :b)"),
                    {"k": f"k{n}", "p": pid, "s": source, "at": 1_795_000_000.0 + n, "b": b"{}"})
            for pid in ("p1", "p2"):
                conn.execute(text(
                    "INSERT INTO predictions (id, status, rank, first_seen_at, updated_at, "
                    "event_at, event_count, source) VALUES (:p, 'processing', 1, 0, 0, 0, 1, "
                    "'webhook')"), {"p": pid})
        upgrade(engine)
        with engine.connect() as conn:
            assert schema_differences(conn) == []
        assert [listed for _, listed in stored(engine, "p1")] == [False, False]
        assert len(found(engine, "p1")) == 2 and len(found(engine, "p2")) == 1
        assert prediction(engine, "p1")["signed"] and not prediction(engine, "p2")["signed"]
        with engine.begin() as conn:
            command.downgrade(alembic_config(conn), "0006")
        assert scalar(engine, "SELECT count(*) FROM events") == 3
    finally:
        engine.dispose()
