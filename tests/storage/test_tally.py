"""The writer process's bucket tally: folded exactly, journaled, and counted again (never twice)
when the writer that held it died; its owner locks; the pace that turns it on."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import textwrap
from collections import Counter
from pathlib import Path

import pytest
from sqlalchemy import Engine

from hookwatch.storage import owners
from hookwatch.storage.batch import NewEvent
from hookwatch.storage.deferral import Deferral
from hookwatch.storage.engine import writer_process_config
from hookwatch.storage.rollups import Counted, bucket_increments
from hookwatch.storage.tally import FLUSH_EVERY, IDLE_FLUSH, Tally
from hookwatch.storage.transaction import commit_events
from hookwatch.storage.writer import Pace, Writer
from hookwatch.storage.writer_child import _Connection
from tests.conftest import ManualClock
from tests.storage.conftest import event, outcome_totals, scalar

ROOT = Path(__file__).resolve().parents[2]
STATUSES = ("succeeded", "failed", "canceled")


def terminal(n: int, at: float, prefix: str = "p", models: int = 4) -> list[NewEvent]:
    return [event({"id": f"{prefix}{i}", "status": STATUSES[i % 3], "model": f"acme/m{i % models}",
                   "version": f"v{i % 2}", "created_at": "2026-11-20T10:00:00Z",
                   "completed_at": "2026-11-20T10:00:01.5Z",
                   "metrics": {"predict_time": 0.1 * (i % 7)}},
                  key=f"id:{prefix}{i}", at=at) for i in range(n)]


def model_totals(events: list[NewEvent]) -> dict[str, tuple[int, int, int]]:
    """What the model-scope buckets must hold for these events: (succeeded, failed, canceled)."""
    out: dict[str, list[int]] = {}
    for e in events:
        assert e.model is not None and e.status is not None
        out.setdefault(e.model, [0, 0, 0])[STATUSES.index(e.status)] += 1
    return {m: (v[0], v[1], v[2]) for m, v in out.items()}


def bucket_models(engine: Engine) -> dict[str, tuple[int, ...]]:
    return {name: v[:3] for (scope, name), v in outcome_totals(engine).items()
            if scope == "model"}


def counted(i: int) -> Counted:
    return Counted(prediction_id=f"c{i}", status=STATUSES[i % 3], model=f"m{i % 4}",
                   deployment="d" if i % 2 else None, version=f"v{i % 3}",
                   predict_time=0.05 * i, queue_time=0.01 * i, error=None, total_time=0.2 * i)


def test_a_fold_equals_each_batch_counted_on_its_own() -> None:
    """Batches at different times (two minutes, an hour apart) fold to the sums the per-batch
    increments would have written, row by row."""
    times = [1_795_000_010.0, 1_795_000_050.0, 1_795_000_070.0, 1_795_003_700.0]
    batches = [[counted(i) for i in range(b * 10, b * 10 + 10)] for b in range(4)]
    tally = Tally()
    expected_outcomes: dict[tuple[object, ...], list[float]] = {}
    expected_latency: Counter[tuple[object, ...]] = Counter()
    for b, (at, batch) in enumerate(zip(times, batches, strict=True)):
        tally.add(f"b{b}", batch, at, now=100.0 + b)
        outcomes, latency = bucket_increments(batch, at)
        for key, row in outcomes.items():
            mine = expected_outcomes.setdefault(key, [0.0] * len(row))
            expected_outcomes[key] = [a + v for a, v in zip(mine, row, strict=True)]
        expected_latency.update(latency)
    outcome_rows, latency_rows = tally.rows()
    got = {row[:4]: list(row[4:]) for row in outcome_rows}
    assert got.keys() == expected_outcomes.keys()
    for key, row in got.items():
        assert row == pytest.approx(expected_outcomes[key])
    assert {row[:6]: row[6] for row in latency_rows} == dict(expected_latency)
    assert tally.batches == ["b0", "b1", "b2", "b3"] and len(tally.counted) == 40
    assert outcome_rows == sorted(outcome_rows)  # the fixed order keeps replicas deadlock-free


def test_a_fold_is_due_after_flush_every_and_not_before() -> None:
    tally = Tally()
    assert tally.due_in(5.0) is None and not tally
    tally.add("b0", [counted(1)], 1_795_000_000.0, now=5.0)
    tally.add("b1", [counted(2)], 1_795_000_000.0, now=5.3)
    assert tally.due_in(5.1) == pytest.approx(FLUSH_EVERY - 0.1)  # from the oldest
    assert tally.due_in(5.0 + FLUSH_EVERY) == 0.0 and tally


def test_the_pace_folds_only_under_load() -> None:
    pace = Pace()
    assert not pace.busy(0.0, 40)  # nothing before it
    assert not pace.busy(0.01, 20)  # 40 before it
    assert not pace.busy(0.02, 10)  # 60 before it
    assert pace.busy(0.03, 1)  # 70 >= FOLD_ABOVE
    assert not pace.busy(0.5, 1)  # the window moved on: a trickle settles again


def _deferral(engine: Engine) -> tuple[_Connection, Deferral, Path]:
    config = writer_process_config(engine)
    assert config is not None and config.tally
    path = Path(config.args[0])
    connection = _Connection(config)
    return connection, Deferral(connection.lend, path, dialect="sqlite", retries=3), path


def _journal(deferral: Deferral, connection: _Connection, batch: list[NewEvent], at: float,
             mono: float) -> None:
    """One round under load: the batch journaled, its outcomes folded."""
    deferral.plan(False, mono)
    assert deferral.journal_owner() == deferral.lock.token and deferral.then() is None
    result = commit_events(connection.lend, batch, now=at, dialect="sqlite", retries=3,
                           retried=[], journal=deferral.journal_owner())
    assert result.journaled is not None
    assert deferral.committed(result, at, flushed=False, now=mono) == []


def test_journaled_outcomes_reach_the_buckets_with_the_flush(
    sqlite_engine: Engine, clock: ManualClock
) -> None:
    connection, deferral, _ = _deferral(sqlite_engine)
    try:
        sent = [terminal(30, clock.now), terminal(30, clock.now + 61, "q"),
                terminal(6, clock.now + 62, "r")]
        _journal(deferral, connection, sent[0], clock.now, 10.0)
        _journal(deferral, connection, sent[1], clock.now + 61, 10.1)
        assert scalar(sqlite_engine, "SELECT count(*) FROM count_journal") == 2
        assert scalar(sqlite_engine, "SELECT count(*) FROM outcome_buckets") == 0
        assert scalar(sqlite_engine, "SELECT count(*) FROM predictions "
                                     "WHERE counted_by IS NOT NULL") == 60
        assert deferral.due_in(10.1) == IDLE_FLUSH
        # The next round is due: it writes the tally with its own batch.
        deferral.plan(False, 10.0 + FLUSH_EVERY)
        then = deferral.then()
        assert deferral.journal_owner() is None and then is not None
        result = commit_events(connection.lend, sent[2], now=clock.now + 62, dialect="sqlite",
                               retries=3, retried=[], then=then)
        reported = deferral.committed(result, clock.now + 62, flushed=True, now=10.6)
        assert sorted(c.prediction_id for c in reported) == sorted(
            [f"p{i}" for i in range(30)] + [f"q{i}" for i in range(30)] + [f"r{i}" for i in range(6)])
        assert not deferral.tally
    finally:
        deferral.close()
        connection.conn.close()
    assert scalar(sqlite_engine, "SELECT count(*) FROM count_journal") == 0
    assert bucket_models(sqlite_engine) == model_totals([e for b in sent for e in b])
    # Two minutes of buckets: p in the first, q and r in the next.
    assert scalar(sqlite_engine, "SELECT count(DISTINCT start) FROM outcome_buckets "
                                 "WHERE resolution = 60") == 2
    assert not list(Path(connection.config.args[0]).parent.glob("*.writer-*"))


_DIE_HOLDING_A_TALLY = textwrap.dedent("""
    import sys, time
    from pathlib import Path
    from sqlalchemy import create_engine
    from hookwatch.storage.engine import writer_process_config
    from hookwatch.storage.writer_child import _Connection
    from hookwatch.storage.deferral import Deferral
    from hookwatch.storage.transaction import commit_events
    from tests.storage.test_tally import terminal
    config = writer_process_config(create_engine(sys.argv[1]))
    connection = _Connection(config)
    deferral = Deferral(connection.lend, Path(config.args[0]), dialect="sqlite", retries=3)
    at = float(sys.argv[2])
    for n in range(3):
        deferral.plan(False, 1.0)
        result = commit_events(connection.lend, terminal(20, at + 60 * n, f"k{n}-"),
                               now=at + 60 * n, dialect="sqlite", retries=3, retried=[],
                               journal=deferral.journal_owner())
        deferral.committed(result, at + 60 * n, flushed=False, now=1.0)
    print(deferral.lock.token, flush=True)
    time.sleep(60)
""")


def test_a_killed_writers_tally_is_counted_by_the_next_and_only_once(
    sqlite_engine: Engine, sqlite_url: str, clock: ManualClock
) -> None:
    """A writer process SIGKILLed with 60 outcomes folded and not written: the next writer
    finds its journal, sees its lock free, and counts them from the predictions, each at its
    own batch's time; a writer after that finds nothing more to count."""
    dying = subprocess.Popen([sys.executable, "-c", _DIE_HOLDING_A_TALLY, sqlite_url,
                              str(clock.now)], cwd=ROOT, stdout=subprocess.PIPE, text=True)
    try:
        assert dying.stdout is not None
        token = dying.stdout.readline().strip()
        assert token, "the writer never journaled its batches"
        assert scalar(sqlite_engine, "SELECT count(*) FROM count_journal") == 3
        database = Path(sqlite_engine.url.database or "")
        # Alive: nobody may count its tally.
        with owners.if_dead(database, token) as dead:
            assert not dead
        connection, live, _ = _deferral(sqlite_engine)
        assert live.recover() == 0
        live.close()
        connection.conn.close()
        assert scalar(sqlite_engine, "SELECT count(*) FROM count_journal") == 3
    finally:
        dying.send_signal(signal.SIGKILL)
        dying.wait()
    assert scalar(sqlite_engine, "SELECT count(*) FROM outcome_buckets") == 0

    async def body(writer: Writer) -> None:
        assert writer.process_id is not None  # its process recovered before it was ready

    run_writer(sqlite_engine, clock, body)
    assert scalar(sqlite_engine, "SELECT count(*) FROM count_journal") == 0
    totals = bucket_models(sqlite_engine)
    assert totals == model_totals([e for n in range(3) for e in terminal(20, 0.0, f"k{n}-")])
    assert scalar(sqlite_engine, "SELECT count(DISTINCT start) FROM outcome_buckets "
                                 "WHERE resolution = 60") == 3
    assert not list(database.parent.glob(database.name + owners.SUFFIX + "*"))
    run_writer(sqlite_engine, clock, body)  # nothing journaled is left to count twice
    assert bucket_models(sqlite_engine) == totals


def run_writer(engine: Engine, clock: ManualClock, body: object) -> None:
    async def main() -> None:
        writer = Writer(engine, clock=clock, process=writer_process_config(engine))
        await writer.start()
        try:
            await body(writer)  # type: ignore[operator]
        finally:
            await writer.stop()

    asyncio.run(main())


def test_under_load_every_outcome_is_reported_once_and_counted_once(
    sqlite_engine: Engine, clock: ManualClock
) -> None:
    """Through the real writer process, every batch folded (the pace always busy): the
    listeners hear of each outcome once, when its increments are written, and the buckets
    end exact with no journal left."""
    reported: list[str] = []
    batch = terminal(400, clock.now, models=20)

    async def main() -> None:
        writer = Writer(sqlite_engine, clock=clock, process=writer_process_config(sqlite_engine),
                        on_commit=lambda cs: reported.extend(c.prediction_id for c in cs))
        writer._pace.FOLD_ABOVE = 0  # type: ignore[misc]  # every batch under load
        await writer.start()
        try:
            answers = await asyncio.gather(*(writer.submit(e) for e in batch))
            assert answers == [False] * len(batch)
            for _ in range(500):
                if len(reported) >= len(batch):
                    break
                await asyncio.sleep(0.01)
        finally:
            await writer.stop()

    asyncio.run(main())
    assert sorted(reported) == sorted(f"p{i}" for i in range(400))
    assert scalar(sqlite_engine, "SELECT count(*) FROM count_journal") == 0
    assert bucket_models(sqlite_engine) == model_totals(batch)


def test_an_owner_lock_is_taken_only_once_its_writer_is_gone(tmp_path: Path) -> None:
    database = tmp_path / "h.db"
    lock = owners.OwnerLock(database)
    with owners.if_dead(database, lock.token) as dead:
        assert not dead
    assert owners.strays(database, keep=set()) == [lock.token]
    assert owners.strays(database, keep={lock.token}) == []
    os.close(lock._fd)  # as if its process died: the kernel frees the lock, the file stays
    with owners.if_dead(database, lock.token) as dead:
        assert dead
    assert not lock.path.exists()
    assert owners.strays(database, keep=set()) == []


def test_the_writer_process_checkpoints_after_its_answers(
    sqlite_engine: Engine, clock: ManualClock
) -> None:
    """wal_autocheckpoint is off on the process's connection: the database file grows only
    when `checkpoint` copies the WAL back, every checkpoint_every events."""
    config = writer_process_config(sqlite_engine)
    assert config is not None and "PRAGMA wal_autocheckpoint=0" in config.setup
    connection = _Connection(config)
    database = Path(config.args[0])
    try:
        before = database.stat().st_size
        for n in range(10):
            commit_events(connection.lend, terminal(40, clock.now, f"w{n}-"), now=clock.now,
                          dialect="sqlite", retries=3, retried=[])
        assert database.stat().st_size == before  # 400 predictions, all still in the WAL
        assert not connection.checkpoint_due(config.checkpoint_every - 1)
        assert connection.checkpoint_due(1)
        connection.checkpoint()
        assert database.stat().st_size > before
        assert not connection.checkpoint_due(1)  # counting starts again
    finally:
        connection.conn.close()
