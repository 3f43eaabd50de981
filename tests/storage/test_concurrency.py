"""Two replicas' writers on one database: overlapping batches, no double count, no lost event."""

from __future__ import annotations

import random
import threading
import time
import uuid
from collections import Counter, defaultdict
from collections.abc import Iterator

import pytest
from sqlalchemy import Engine, text
from sqlalchemy.engine import make_url

from hookwatch.storage.batch import BatchResult, NewEvent
from hookwatch.storage.engine import make_engine
from hookwatch.storage.writer import Writer
from tests.conftest import ManualClock
from tests.storage.conftest import event as make_event
from tests.storage.conftest import outcome_totals, scalar

TERMINAL = ("succeeded", "failed", "canceled")


def lifecycles(n: int, rng: random.Random, t0: float) -> list[NewEvent]:
    """n predictions; each starts, processes, ends, sometimes twice (different terminal)."""
    events: list[NewEvent] = []
    for i in range(n):
        pid = f"p{i:04d}"
        labels = {"model": "acme/sdxl", "deployment": f"acme/d{i % 7}", "version": "v1"}
        steps: list[tuple[str, dict[str, object]]] = [
            ("starting", {}), ("processing", {"logs": "step 0"})
        ]
        steps.append((rng.choice(TERMINAL), {"metrics": {"predict_time": 0.1 + i / 1000}}))
        if i % 5 == 0:  # a second, different terminal event: the first committed one wins
            steps.append((rng.choice(TERMINAL), {}))
        for j, (status, extra) in enumerate(steps):
            doc = {"id": pid, "status": status, **labels, **extra}
            events.append(make_event(doc, key=f"id:{pid}:{j}", at=t0 + j, sent_at=t0 + j))
    return events


def replica_batches(events: list[NewEvent], seed: int) -> list[list[NewEvent]]:
    """What one replica sees: every event (a retried webhook can hit either), shuffled."""
    rng = random.Random(seed)
    mine = events[:]
    rng.shuffle(mine)
    batches: list[list[NewEvent]] = []
    while mine:
        size = rng.randint(5, 60)
        batches.append(mine[:size])
        mine = mine[size:]
    return batches


@pytest.fixture
def second_engine(db_url: str, engine: Engine) -> Iterator[Engine]:
    """Another replica: its own engine and pool on the same database."""
    other = make_engine(db_url)
    yield other
    other.dispose()


def test_two_replicas_commit_overlapping_batches(
    engine: Engine, second_engine: Engine, clock: ManualClock
) -> None:
    events = lifecycles(150, random.Random(7), clock.now)
    results: dict[int, list[tuple[list[NewEvent], BatchResult]]] = defaultdict(list)
    barrier = threading.Barrier(2)
    errors: list[BaseException] = []

    def replica(index: int, eng: Engine) -> None:
        writer = Writer(eng, clock=clock, retries=10)
        try:
            barrier.wait()
            for batch in replica_batches(events, seed=index):
                results[index].append((batch, writer.commit(batch)))
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=replica, args=(i, e))
               for i, e in enumerate((engine, second_engine))]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    assert not errors, errors

    # Every event stored once, and acknowledged as new by exactly one replica.
    new_keys = Counter(
        ev.dedup_key
        for pairs in results.values()
        for batch, result in pairs
        for ev, dup in zip(batch, result.duplicates, strict=True)
        if not dup
    )
    assert set(new_keys) == {ev.dedup_key for ev in events}
    assert set(new_keys.values()) == {1}
    assert scalar(engine, "SELECT count(*) FROM events") == len(events)

    # Each prediction counted exactly once, under the status it finally holds.
    counted = [c for pairs in results.values() for _, r in pairs for c in r.counted]
    assert Counter(c.prediction_id for c in counted) == Counter(
        {f"p{i:04d}": 1 for i in range(150)}
    )
    with engine.connect() as conn:
        final: dict[str, str] = dict(
            conn.execute(text("SELECT id, status FROM predictions")).all()
        )
        event_counts: dict[str, int] = dict(
            conn.execute(text("SELECT id, event_count FROM predictions")).all()
        )
    assert {c.prediction_id: c.status for c in counted} == final
    assert event_counts == Counter(ev.prediction_id for ev in events)

    totals = outcome_totals(engine)
    by_status = Counter(final.values())
    expected = (*tuple(by_status[s] for s in ("succeeded", "failed", "canceled")), 0, 0)
    assert totals[("model", "acme/sdxl")] == expected
    assert sum(sum(v) for k, v in totals.items() if k[0] == "deployment") == 150


def _with_options(url: str, extra: str, name: str) -> str:
    """The URL with extra `-c name=value` server options (kept alongside the search_path)."""
    parsed = make_url(url)
    options = parsed.query.get("options", "")
    options = options if isinstance(options, str) else " ".join(options)
    query = {"options": f"{options} {extra}".strip(), "application_name": name}
    return parsed.update_query_dict(query).render_as_string(hide_password=False)


@pytest.mark.parametrize("db_url", ["postgres"], indirect=True)
def test_deadlock_is_retried(db_url: str, engine: Engine, clock: ManualClock) -> None:
    """A real deadlock between the writer and another session: the writer retries and wins.

    The writer locks p1 then waits on p2, held by another transaction, which then asks for
    p1. The writer's deadlock_timeout is the shorter, so PostgreSQL aborts the writer (40P01).
    """
    name = f"hw-writer-{uuid.uuid4().hex[:8]}"
    writer_engine = make_engine(_with_options(db_url, "-c deadlock_timeout=1000", name))
    writer = Writer(writer_engine, clock=clock)
    seed = [make_event({"id": p, "status": "starting", "model": "m"}, key=f"id:{p}:0",
                       at=clock.now) for p in ("p1", "p2")]
    writer.commit(seed)
    blocker = make_engine(_with_options(db_url, "-c deadlock_timeout=30000", "hw-blocker"))
    done: list[BatchResult] = []
    try:
        with blocker.connect() as other:
            other.execute(text("UPDATE predictions SET updated_at = updated_at WHERE id = 'p2'"))
            batch = [make_event({"id": p, "status": "processing", "model": "m"},
                                key=f"id:{p}:1", at=clock.now) for p in ("p1", "p2")]
            thread = threading.Thread(target=lambda: done.append(writer.commit(batch)))
            thread.start()
            deadline = time.monotonic() + 10
            while not scalar(engine, "SELECT count(*) FROM pg_stat_activity "
                                     "WHERE application_name = :n AND wait_event_type = 'Lock'",
                             n=name):
                assert time.monotonic() < deadline, "the writer never waited on p2"
                time.sleep(0.01)
            other.execute(text("UPDATE predictions SET updated_at = updated_at WHERE id = 'p1'"))
            other.commit()
            thread.join(timeout=30)
    finally:
        blocker.dispose()
        writer_engine.dispose()
    assert "40P01" in writer.retried
    assert done and done[0].duplicates == [False, False]
    assert scalar(engine, "SELECT sum(event_count) FROM predictions") == 4
    assert scalar(engine, "SELECT count(*) FROM predictions WHERE status = 'processing'") == 2
