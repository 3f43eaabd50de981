"""Two deliverers (two replicas' engines) on one outbox never send one row twice."""

from __future__ import annotations

import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator

import pytest
from sqlalchemy import Engine, text

from hookwatch.notifiers.claims import claim
from hookwatch.notifiers.worker import DeliveryReport, DeliveryWorker
from hookwatch.storage.engine import make_engine
from hookwatch.storage.migrate import upgrade
from tests.conftest import ManualClock
from tests.notifiers.helpers import (
    HOOK_SECRET,
    Answer,
    Receiver,
    Request,
    alert,
    enqueue,
    make_worker,
    notifier_configs,
)

ROWS = 40


@pytest.fixture
def engines(db_url: str) -> Iterator[tuple[Engine, Engine]]:
    """Two replicas: two engines, two pools, one database."""
    first = make_engine(db_url)
    upgrade(first)
    second = make_engine(db_url)
    yield first, second
    first.dispose()
    second.dispose()


def fill(engine: Engine, now: float, rows: int = ROWS) -> list[int]:
    return [
        enqueue(engine, alert(alert_key=f"rule:model:m{i}", alert_id=i), notifier="hook", now=now)
        for i in range(rows)
    ]


def together(*work: Callable[[], object]) -> list[object]:
    """Run each callable in its own thread, released at the same moment."""
    barrier = threading.Barrier(len(work))
    results: list[object] = [None] * len(work)
    errors: list[BaseException] = []

    def run(i: int, fn: Callable[[], object]) -> None:
        try:
            barrier.wait()
            results[i] = fn()
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=run, args=(i, fn)) for i, fn in enumerate(work)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    assert not errors, errors
    return results


def test_racing_claims_take_each_row_once(
    engines: tuple[Engine, Engine], clock: ManualClock
) -> None:
    ids = fill(engines[0], clock.now, rows=60)

    def drain(engine: Engine) -> list[int]:
        mine: list[int] = []
        while batch := claim(engine, now=clock.now, limit=1, exclude=set()):
            mine.extend(row.id for row in batch)
        return mine

    first, second = together(lambda: drain(engines[0]), lambda: drain(engines[1]))
    assert isinstance(first, list) and isinstance(second, list)
    assert not set(first) & set(second)
    assert sorted(first + second) == sorted(ids)


@pytest.mark.parametrize("db_url", ["postgres"], indirect=True)
def test_a_row_locked_by_another_claim_is_skipped_not_waited_for(
    engines: tuple[Engine, Engine], clock: ManualClock
) -> None:
    ids = fill(engines[0], clock.now, rows=3)
    with engines[0].connect() as other:  # another replica, mid-claim on the first row
        other.execute(text("SELECT id FROM notifications WHERE id = :id FOR UPDATE"),
                      {"id": ids[0]})
        got: list[list[int]] = []
        thread = threading.Thread(target=lambda: got.append(
            [r.id for r in claim(engines[1], now=clock.now, limit=10, exclude=set())]))
        thread.start()
        thread.join(timeout=5)
        assert not thread.is_alive(), "claim waited for a locked row instead of skipping it"
        other.rollback()
    assert got == [ids[1:]]


def test_two_deliverers_send_every_notification_exactly_once(
    engines: tuple[Engine, Engine], clock: ManualClock
) -> None:
    def slow_ok(_request: Request) -> Answer:
        time.sleep(0.01)  # sends overlap, as they would across replicas
        return 200, {}, b"ok"

    with Receiver(answer=slow_ok) as receiver:
        configs = notifier_configs({"hook": {"type": "webhook", "url": receiver.url + "/alerts",
                                             "secret": HOOK_SECRET}})
        workers: list[DeliveryWorker] = [make_worker(e, configs) for e in engines]
        ids = fill(engines[0], clock.now)
        try:
            reports = together(*(lambda r=r: r.deliver(clock.now) for r in workers))
        finally:
            for worker in workers:
                worker.close()
    sent = [r.sent for r in reports if isinstance(r, DeliveryReport)]
    assert sum(sent) == ROWS
    if engines[0].dialect.name == "postgresql":
        # SKIP LOCKED: each takes rows the other has not locked. (On SQLite, one process in
        # practice, the second claim may lose the compare-and-set and end its pass early.)
        assert min(sent) > 0, f"the deliverers did not overlap: {sent}"
    message_ids = Counter(r.headers["webhook-id"] for r in receiver.requests)
    assert len(message_ids) == ROWS and set(message_ids.values()) == {1}
    with engines[0].connect() as conn:
        states = conn.execute(text("SELECT state, attempts, count(*) FROM notifications "
                                   "GROUP BY state, attempts")).all()
        attempts = conn.execute(text("SELECT count(*) FROM delivery_attempts")).scalar_one()
    assert [tuple(s) for s in states] == [("sent", 1, ROWS)]
    assert attempts == ROWS
    assert len(ids) == ROWS
