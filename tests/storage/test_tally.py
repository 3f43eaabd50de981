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

from hookwatch.storage import owners, packed
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


def bucket_models(engine: Engine, resolution: int = 60) -> dict[str, tuple[int, ...]]:
    return {name: v[:3] for (scope, name), v in
            outcome_totals(engine, resolution=resolution).items() if scope == "model"}


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
    expected_latency: dict[tuple[object, ...], Counter[str]] = {}
    for b, (at, batch) in enumerate(zip(times, batches, strict=True)):
        tally.add(f"b{b}", batch, at, now=100.0 + b)
        outcomes, latency = bucket_increments(batch, at)
        for key, row in outcomes.items():
            mine = expected_outcomes.setdefault(key, [0.0] * len(row))
            expected_outcomes[key] = [a + v for a, v in zip(mine, row, strict=True)]
        for key, hist in latency.items():
            expected_latency.setdefault(key, Counter()).update(
                {str(index): count for index, count in hist.items()})
    rows = tally.rows()
    got = {row[:4]: list(row[4:-1]) for row in rows}
    assert got.keys() == expected_outcomes.keys()
    for key, row in got.items():
        assert row == pytest.approx(expected_outcomes[key])
    assert {row[:4]: packed.unpack(row[-1]) for row in rows if row[-1] is not None} == {
        key: dict(hist) for key, hist in expected_latency.items()}
    assert {row[0] for row in rows if row[-1] is not None} == {60, 3600}  # no daily histograms
    assert tally.batches == ["b0", "b1", "b2", "b3"] and len(tally.counted) == 40
    keys = [row[:4] for row in rows]
    assert keys == sorted(keys)  # the fixed order keeps replicas deadlock-free


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
        # The next round is due: the tally is sealed and written with the round's batch,
        # which is journaled for the next tally.
        deferral.plan(False, 10.0 + FLUSH_EVERY)
        then = deferral.then()
        assert deferral.journal_owner() is not None and then is not None
        result = commit_events(connection.lend, sent[2], now=clock.now + 62, dialect="sqlite",
                               retries=3, retried=[], journal=deferral.journal_owner(),
                               then=then)
        reported = deferral.committed(result, clock.now + 62, flushed=True, now=10.6)
        assert sorted(c.prediction_id for c in reported) == sorted(
            [f"p{i}" for i in range(30)] + [f"q{i}" for i in range(30)])
        assert deferral.sealed is None  # under CHUNK_ROWS: one round wrote all of it
        assert bucket_models(sqlite_engine) == model_totals(sent[0] + sent[1])
        assert scalar(sqlite_engine, "SELECT count(*) FROM count_journal") == 1
        assert scalar(sqlite_engine, "SELECT count(*) FROM count_flushes") == 0
        # A pause: the new tally is written whole, on its own.
        reported = deferral.flush_alone(10.7)
        assert sorted(c.prediction_id for c in reported) == sorted(f"r{i}" for i in range(6))
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


def test_a_sealed_fold_is_written_a_chunk_a_round(
    sqlite_engine: Engine, clock: ManualClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A due tally larger than CHUNK_ROWS: each round writes the next few scopes with its batch
    and records how far it got; its outcomes are reported once, with the last chunk, and the
    buckets end exact."""
    monkeypatch.setattr("hookwatch.storage.deferral.CHUNK_ROWS", 50)
    connection, deferral, _ = _deferral(sqlite_engine)
    folded = [terminal(40, clock.now, "a", models=20), terminal(40, clock.now + 61, "b", models=20)]
    rounds = [terminal(1, clock.now + 62, f"c{n}-") for n in range(20)]
    try:
        _journal(deferral, connection, folded[0], clock.now, 10.0)
        _journal(deferral, connection, folded[1], clock.now + 61, 10.1)
        reported: list[str] = []
        progress: list[int] = []
        sent: list[NewEvent] = []
        for n, batch in enumerate(rounds):
            deferral.plan(False, 10.0 + FLUSH_EVERY + n * 0.01)
            if deferral.sealed is None:
                break
            sent += batch
            total = deferral.sealed.total
            result = commit_events(connection.lend, batch, now=clock.now + 62, dialect="sqlite",
                                   retries=3, retried=[], journal=deferral.journal_owner(),
                                   then=deferral.then())
            reported += [c.prediction_id for c in deferral.committed(
                result, clock.now + 62, flushed=True, now=10.6 + n * 0.01)]
            if deferral.sealed is not None:
                progress.append(scalar(sqlite_engine, "SELECT written FROM count_flushes"))
                assert scalar(sqlite_engine, "SELECT count(*) FROM count_journal "
                                             "WHERE flush_id IS NOT NULL") == 2
                assert reported == []
        # Scopes written, a chunk of about 50 rows a round (a scope's rows are never split).
        assert len(progress) >= 3 and progress == sorted(set(progress)) and progress[-1] < total
        assert sorted(reported) == sorted(e.prediction_id for b in folded for e in b)
        assert scalar(sqlite_engine, "SELECT count(*) FROM count_flushes") == 0
        for resolution in (60, 3600, 86400):
            assert bucket_models(sqlite_engine, resolution) == model_totals(folded[0] + folded[1])
        deferral.flush_alone(11.0, everything=True)  # the rounds' own outcomes
        assert not deferral.tally
    finally:
        deferral.close()
        connection.conn.close()
    assert scalar(sqlite_engine, "SELECT count(*) FROM count_journal") == 0
    assert bucket_models(sqlite_engine) == model_totals(folded[0] + folded[1] + sent)


def test_a_lull_writes_a_large_fold_in_chunks_not_before_the_next_answer(
    sqlite_engine: Engine, clock: ManualClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A batch that would settle (nothing else on its way) finds a fold of more than
    SETTLE_KEYS keys: the fold is sealed and chunked, the batch journaled like any other; a
    small fold is written whole with it."""
    monkeypatch.setattr("hookwatch.storage.deferral.SETTLE_KEYS", 10)
    monkeypatch.setattr("hookwatch.storage.deferral.CHUNK_ROWS", 50)
    connection, deferral, _ = _deferral(sqlite_engine)
    try:
        _journal(deferral, connection, terminal(40, clock.now, models=20), clock.now, 10.0)
        assert deferral.tally.keys > 10
        deferral.plan(True, 10.01)
        assert not deferral.settle and deferral.sealed is not None
        assert deferral.journal_owner() is not None
        assert 0 < deferral.sealed.next_stop(50) < deferral.sealed.total
        deferral.flush_alone(10.02, everything=True)
        assert deferral.sealed is None and not deferral.tally
        _journal(deferral, connection, terminal(1, clock.now, "s"), clock.now, 10.1)
        assert 0 < deferral.tally.keys <= 10
        deferral.plan(True, 10.11)
        assert deferral.settle and deferral.sealed is None and deferral.journal_owner() is None
    finally:
        deferral.close()
        connection.conn.close()


_DIE_HOLDING_A_TALLY = textwrap.dedent("""
    import sys, time
    from pathlib import Path
    from sqlalchemy import create_engine
    from hookwatch.storage.engine import writer_process_config
    from hookwatch.storage.writer_child import _Connection
    from hookwatch.storage import deferral as deferral_module
    from hookwatch.storage.deferral import Deferral
    from hookwatch.storage.tally import FLUSH_EVERY
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
    deferral_module.CHUNK_ROWS = 40
    deferral.plan(False, 1.0 + FLUSH_EVERY)  # sealed, and its first 40 rows written
    result = commit_events(connection.lend, [], now=at, dialect="sqlite", retries=3, retried=[],
                           then=deferral.then())
    assert deferral.committed(result, at, flushed=True, now=2.0) == []
    sealed = deferral.sealed
    assert sealed is not None and 0 < sealed.written < sealed.total
    print(deferral.lock.token, sealed.written, flush=True)
    time.sleep(60)
""")


def test_a_killed_writers_tally_is_counted_by_the_next_and_only_once(
    sqlite_engine: Engine, sqlite_url: str, clock: ManualClock
) -> None:
    """A writer process SIGKILLed with 60 outcomes folded, sealed and written one chunk (of
    about 40 rows) far: the next writer finds its journal, sees its lock free, and counts them from the
    predictions, each at its own batch's time, less the rows written; a writer after that
    finds nothing more to count."""
    dying = subprocess.Popen([sys.executable, "-c", _DIE_HOLDING_A_TALLY, sqlite_url,
                              str(clock.now)], cwd=ROOT, stdout=subprocess.PIPE, text=True)
    try:
        assert dying.stdout is not None
        token, _, scopes = dying.stdout.readline().strip().partition(" ")
        assert token, "the writer never journaled its batches"
        assert scalar(sqlite_engine, "SELECT count(*) FROM count_journal") == 3
        assert scalar(sqlite_engine, "SELECT written FROM count_flushes") == int(scopes)
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
    written = scalar(sqlite_engine, "SELECT count(DISTINCT scope || name) FROM outcome_buckets")
    assert written == int(scopes)  # the first chunk's scopes, whole

    async def body(writer: Writer) -> None:
        assert writer.process_id is not None  # its process recovered before it was ready

    run_writer(sqlite_engine, clock, body)
    assert scalar(sqlite_engine, "SELECT count(*) FROM count_journal") == 0
    totals = bucket_models(sqlite_engine)
    assert totals == model_totals([e for n in range(3) for e in terminal(20, 0.0, f"k{n}-")])
    for resolution in (3600, 86400):
        assert bucket_models(sqlite_engine, resolution) == totals
    assert scalar(sqlite_engine, "SELECT count(*) FROM count_flushes") == 0
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
