"""The writer's own process: commits in order, survives a crash, never outlives its parent,
and never holds a credential on its command line."""

from __future__ import annotations

import asyncio
import dataclasses
import fcntl
import os
import signal
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import TypeVar

import pytest
from sqlalchemy import Engine, text

from hookwatch.storage.batch import NewEvent
from hookwatch.storage.engine import writer_process_config
from hookwatch.storage.frames import PIPE_BYTES
from hookwatch.storage.writer import Writer, WriterUnavailable
from hookwatch.storage.writer_child import MERGE_EVENTS, ChildConfig, ChildFailed, WriterChild
from tests.conftest import ManualClock
from tests.storage.conftest import event, scalar

T = TypeVar("T")


def events(n: int, at: float, prefix: str = "p") -> list[NewEvent]:
    return [event({"id": f"{prefix}{i}", "status": "succeeded", "model": "m"},
                  key=f"id:{prefix}{i}", at=at) for i in range(n)]


def run_writer(
    engine: Engine, clock: ManualClock, body: Callable[[Writer], Awaitable[T]]
) -> T:
    async def main() -> T:
        writer = Writer(engine, clock=clock, process=writer_process_config(engine))
        await writer.start()
        try:
            return await body(writer)
        finally:
            await writer.stop()

    return asyncio.run(main())


def child_pid(writer: Writer) -> int:
    pid = writer.process_id
    assert pid is not None, "the writer has no running child"
    return pid


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    status = Path(f"/proc/{pid}/status").read_text()
    return "State:\tZ" not in status


@pytest.mark.parametrize("db_url", ["sqlite", "postgres"], indirect=True)
def test_batches_commit_in_the_child(engine: Engine, clock: ManualClock) -> None:
    batch = events(50, clock.now)

    async def body(writer: Writer) -> list[bool]:
        pid = child_pid(writer)
        assert pid != os.getpid() and alive(pid)
        return list(await asyncio.gather(*(writer.submit(e) for e in batch)))

    answers = run_writer(engine, clock, body)
    assert answers == [False] * 50
    assert scalar(engine, "SELECT count(*) FROM events") == 50
    assert scalar(engine, "SELECT sum(succeeded) FROM outcome_buckets "
                          "WHERE resolution = 60 AND scope = 'model'") == 50


def test_batches_in_flight_together_see_each_other(
    sqlite_engine: Engine, clock: ManualClock
) -> None:
    """Two batches in the pipe at once with the same webhook: the second finds it stored."""
    config = writer_process_config(sqlite_engine)
    assert config is not None
    first, again = events(1, clock.now), events(1, clock.now)

    async def main() -> list[bool]:
        child = WriterChild(config)
        try:
            answers = await asyncio.gather(child.commit(first, clock.now),
                                           child.commit(again, clock.now))
        finally:
            await child.stop()
        return [result.duplicates[0] for result, _ in answers]

    assert asyncio.run(main()) == [False, True]
    assert scalar(sqlite_engine, "SELECT event_count FROM predictions WHERE id = 'p0'") == 1


def _held(engine: Engine) -> Callable[[], None]:
    """Hold SQLite's write lock from another connection, so the child's next commit waits
    (busy_timeout) and the batches sent meanwhile queue up in the pipe; returns the release."""
    assert engine.url.database is not None
    import sqlite3

    blocker = sqlite3.connect(engine.url.database, isolation_level=None)
    blocker.execute("BEGIN IMMEDIATE")

    def release() -> None:
        blocker.execute("ROLLBACK")
        blocker.close()

    return release


def test_batches_waiting_in_the_pipe_commit_in_one_transaction(
    sqlite_engine: Engine, clock: ManualClock
) -> None:
    """While one batch waits on the database, the next ones queue in the pipe; the child then
    commits those together (one fsync) and still answers each batch on its own, in order."""
    config = writer_process_config(sqlite_engine)
    assert config is not None
    first, second, third = (events(2, clock.now, p) for p in ("a", "b", "c"))
    again = events(1, clock.now, "b")  # a duplicate of second's first event

    async def main() -> list[list[bool]]:
        child = WriterChild(config)
        await child.start()
        release = _held(sqlite_engine)
        try:
            waiting = [asyncio.ensure_future(child.commit(first, clock.now))]
            await asyncio.sleep(0.3)  # the child has taken the first and waits on the lock
            waiting += [asyncio.ensure_future(child.commit(batch, clock.now))
                        for batch in (second, again, third)]
            await asyncio.sleep(0.3)
            release()
            answers = await asyncio.gather(*waiting)
        finally:
            await child.stop()
        return [result.duplicates for result, _ in answers]

    assert asyncio.run(main()) == [[False, False], [False, False], [True], [False, False]]
    marks = dict(scalar_rows(sqlite_engine, "SELECT id, counted_by FROM predictions"))
    assert marks["b0"] == marks["b1"] == marks["c0"] == marks["c1"]  # one transaction
    assert scalar(sqlite_engine, "SELECT count(*) FROM events") == 6
    assert scalar(sqlite_engine, "SELECT sum(succeeded) FROM outcome_buckets "
                                 "WHERE resolution = 60 AND scope = 'model'") == 6


def test_a_transaction_holds_at_most_merge_events(
    sqlite_engine: Engine, clock: ManualClock
) -> None:
    """Batches queued in the pipe are merged only up to MERGE_EVENTS a transaction, so under
    load the answers come back in groups (writer_child.MERGE_EVENTS)."""
    config = writer_process_config(sqlite_engine)
    assert config is not None
    batches = [events(MERGE_EVENTS // 2 + 1, clock.now, p) for p in ("a", "b", "c")]

    async def main() -> None:
        child = WriterChild(config)
        await child.start()
        release = _held(sqlite_engine)
        try:
            waiting = [asyncio.ensure_future(child.commit(b, clock.now)) for b in batches]
            await asyncio.sleep(0.3)
            release()
            await asyncio.gather(*waiting)
        finally:
            await child.stop()

    asyncio.run(main())
    marks = dict(scalar_rows(sqlite_engine, "SELECT id, counted_by FROM predictions"))
    assert len(set(marks.values())) == 3  # two of them would exceed MERGE_EVENTS together
    assert scalar(sqlite_engine, "SELECT count(*) FROM events") == 3 * (MERGE_EVENTS // 2 + 1)


def test_a_batch_sent_alone_is_never_merged(sqlite_engine: Engine, clock: ManualClock) -> None:
    """The writer isolates a bad event by sending it alone: the child must not put it in a
    transaction with the good batches waiting beside it."""
    config = writer_process_config(sqlite_engine)
    assert config is not None
    before, after = events(1, clock.now, "a"), events(1, clock.now, "c")
    bad = [dataclasses.replace(before[0], dedup_key="id:bad", prediction_id="bad",
                               error="\ud800 unencodable")]

    async def main() -> list[object]:
        child = WriterChild(config)
        await child.start()
        release = _held(sqlite_engine)
        try:
            blocked = asyncio.ensure_future(child.commit(events(1, clock.now, "x"), clock.now))
            await asyncio.sleep(0.3)
            waiting = [asyncio.ensure_future(child.commit(before, clock.now)),
                       asyncio.ensure_future(child.commit(bad, clock.now, alone=True)),
                       asyncio.ensure_future(child.commit(after, clock.now))]
            await asyncio.sleep(0.3)
            release()
            await blocked
            return list(await asyncio.gather(*waiting, return_exceptions=True))
        finally:
            await child.stop()

    answers = asyncio.run(main())
    assert isinstance(answers[1], ChildFailed)
    assert not isinstance(answers[0], BaseException) and not isinstance(answers[2], BaseException)
    assert sorted(scalar_list(sqlite_engine, "SELECT prediction_id FROM events")) == [
        "a0", "c0", "x0"]


def scalar_rows(engine: Engine, sql: str) -> list[tuple[str, str]]:
    with engine.connect() as conn:
        return [(str(a), str(b)) for a, b in conn.execute(text(sql))]


def test_a_killed_child_loses_no_acknowledged_event_and_is_replaced(
    sqlite_engine: Engine, clock: ManualClock
) -> None:
    batch = events(400, clock.now)

    async def body(writer: Writer) -> tuple[list[object], list[bool], int, int]:
        first = child_pid(writer)
        pending = [asyncio.ensure_future(writer.submit(e)) for e in batch]
        await asyncio.sleep(0)  # the first batches are on their way
        os.kill(first, signal.SIGKILL)
        answers = await asyncio.gather(*pending, return_exceptions=True)
        after = await asyncio.gather(*(writer.submit(e) for e in events(5, clock.now, "q")))
        return list(answers), list(after), first, child_pid(writer)

    answers, after, first, second = run_writer(sqlite_engine, clock, body)
    acknowledged = {e.prediction_id for e, a in zip(batch, answers, strict=True) if a is False}
    refused = [a for a in answers if isinstance(a, BaseException)]
    assert all(isinstance(a, WriterUnavailable) for a in refused)
    stored = set(scalar_list(sqlite_engine, "SELECT prediction_id FROM events"))
    assert acknowledged <= stored  # every 2xx was committed
    assert after == [False] * 5 and second != first  # a new child took over
    assert not alive(first)


def scalar_list(engine: Engine, sql: str) -> list[str]:
    with engine.connect() as conn:
        return [str(v) for v in conn.execute(text(sql)).scalars()]


def test_the_child_ignores_group_signals_and_exits_with_the_writer(
    sqlite_engine: Engine, clock: ManualClock
) -> None:
    """Ctrl-C or SIGTERM to the process group must not kill the child mid-drain; closing
    its stdin (the writer stopping, or the parent dying) ends it."""

    async def body(writer: Writer) -> int:
        pid = child_pid(writer)
        os.kill(pid, signal.SIGINT)
        os.kill(pid, signal.SIGTERM)
        await asyncio.sleep(0.2)
        assert alive(pid)
        assert await writer.submit(events(1, clock.now)[0]) is False
        assert child_pid(writer) == pid
        return pid

    pid = run_writer(sqlite_engine, clock, body)
    deadline = time.monotonic() + 5
    while alive(pid) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not alive(pid)


def test_no_credential_on_the_command_line(
    sqlite_engine: Engine, clock: ManualClock
) -> None:
    config = writer_process_config(sqlite_engine)
    assert config is not None

    async def body(writer: Writer) -> str:
        return Path(f"/proc/{child_pid(writer)}/cmdline").read_bytes().decode()

    cmdline = run_writer(sqlite_engine, clock, body)
    assert cmdline.split("\0")[1:3] == ["-m", "hookwatch.storage.writer_child"]
    assert str(config.args[0]) not in cmdline


def test_a_child_that_cannot_connect_refuses_with_503(
    sqlite_engine: Engine, clock: ManualClock, tmp_path: Path
) -> None:
    config = ChildConfig("sqlite", [str(tmp_path / "missing" / "dir" / "x.db")], {})

    async def main() -> object:
        with pytest.raises(ChildFailed, match="cannot connect: OperationalError"):
            await WriterChild(config).start()
        writer = Writer(sqlite_engine, clock=clock, process=config)
        await writer.start()  # logs the failure; a batch tries again a second later
        try:
            assert writer.describe() == "process down (cannot connect: OperationalError)"
            return await asyncio.gather(writer.submit(events(1, clock.now)[0]),
                                        return_exceptions=True)
        finally:
            await writer.stop()

    [answer] = asyncio.run(main())  # type: ignore[misc]
    assert isinstance(answer, WriterUnavailable)  # the receiver's 503
    assert "cannot connect" in str(answer)
    assert scalar(sqlite_engine, "SELECT count(*) FROM events") == 0


def test_events_and_outcomes_cross_the_pipe_whole() -> None:
    """Every field survives the pickle both ways (the classes pickle as plain tuples)."""
    import dataclasses
    import pickle

    from hookwatch.storage.rollups import Counted

    ev = NewEvent(
        dedup_key="id:m", prediction_id="p", status="failed", source="signed", received_at=1.5,
        sent_at=1.0, headers='{"a":"b"}', body=b'{"id":"p"}', model="acme/m", version="v",
        deployment="acme/d", error="boom \ud800", logs="l", created_at=0.5, started_at=0.75,
        completed_at=1.25, predict_time=0.5,
    )
    assert all(v is not None for v in dataclasses.astuple(ev))
    back = pickle.loads(pickle.dumps(ev))
    assert back == ev and back.rank == ev.rank
    counted = Counted("p", "failed", "m", "d", "v", 0.5, 0.25, "boom")
    assert pickle.loads(pickle.dumps(counted)) == counted


@pytest.mark.skipif(not hasattr(fcntl, "F_GETPIPE_SZ"), reason="Linux's pipe sizes")
def test_a_batch_of_completed_webhooks_fits_the_pipe_at_once(
    sqlite_engine: Engine, clock: ManualClock
) -> None:
    """16 webhooks with 50 lines of logs are over 64 KiB, the default pipe: the parent wrote them
    in two calls with a wait between (storage.frames.widen)."""
    logs = "".join(f"{i:3d}%|#####     | {i}/47 [00:01<00:02, 9.87it/s]\n" for i in range(50))
    batch = [event({"id": f"big{i}", "status": "succeeded", "model": "m", "logs": logs * 2},
                   key=f"id:big{i}", at=clock.now) for i in range(MERGE_EVENTS)]
    assert sum(len(e.body) for e in batch) > 64 * 1024

    async def body(writer: Writer) -> tuple[int, list[bool]]:
        # The pipe as the child reads it: its fd 0, opened again through /proc.
        fd = os.open(f"/proc/{child_pid(writer)}/fd/0", os.O_RDONLY | os.O_NONBLOCK)
        try:
            size = fcntl.fcntl(fd, fcntl.F_GETPIPE_SZ)
        finally:
            os.close(fd)
        return size, list(await asyncio.gather(*(writer.submit(e) for e in batch)))

    size, duplicates = run_writer(sqlite_engine, clock, body)
    assert size == PIPE_BYTES
    assert duplicates == [False] * MERGE_EVENTS
    assert scalar(sqlite_engine, "SELECT count(*) FROM events") == MERGE_EVENTS


PARENT = """
import asyncio, sys, time
from hookwatch.storage.batch import NewEvent
from hookwatch.storage.engine import make_engine, writer_process_config
from hookwatch.storage.writer_child import WriterChild

async def main() -> None:
    child = WriterChild(writer_process_config(make_engine(sys.argv[1])))
    await child.start()
    print(child.pid, flush=True)
    event = NewEvent(dedup_key="id:x", prediction_id="x", status="starting", source="signed",
                     received_at=time.time(), sent_at=None, headers="{}", body=b"{}")
    task = asyncio.ensure_future(child.commit([event], time.time()))  # blocks on the lock
    await asyncio.sleep(60)

asyncio.run(main())
"""


def test_the_child_dies_with_its_parent_even_mid_commit(
    sqlite_url: str, sqlite_engine: Engine
) -> None:
    """The parent is SIGKILLed while the child waits on a locked database: the child must not
    sit out its 30 s busy timeout holding a transaction nobody will answer."""
    import sqlite3
    import subprocess
    import sys

    locker = sqlite3.connect(str(sqlite_engine.url.database), isolation_level=None)
    locker.execute("BEGIN IMMEDIATE")  # the write lock, held
    root = str(Path(__file__).resolve().parents[2])
    parent = subprocess.Popen([sys.executable, "-c", PARENT, sqlite_url], cwd=root,
                              stdout=subprocess.PIPE, text=True)
    try:
        assert parent.stdout is not None
        pid = int(parent.stdout.readline())
        time.sleep(0.5)  # the batch is in the child, waiting on the lock
        assert alive(pid)
        parent.kill()
        parent.wait()
        deadline = time.monotonic() + 5
        while alive(pid) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert not alive(pid)
    finally:
        locker.execute("ROLLBACK")
        locker.close()
        parent.kill()
    assert scalar(sqlite_engine, "SELECT count(*) FROM events") == 0
