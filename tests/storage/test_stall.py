"""A stalled commit (another connection holds SQLite's write lock): the writer answers its
waiting events WriterUnavailable after stall_after, refuses new ones at once, drops queued ones
unsent, says so in its health, and commits again once the lock is gone; what it answered 200
is stored. In the writer process and on the writer thread."""

from __future__ import annotations

import asyncio
import sqlite3
import time

import pytest
from sqlalchemy import Engine

from hookwatch.storage.engine import writer_process_config
from hookwatch.storage.health import CommitHealth, probe_write
from hookwatch.storage.writer import Writer, WriterUnavailable
from tests.conftest import ManualClock
from tests.storage.conftest import event, scalar


def test_health_decides_from_the_oldest_commit_in_flight() -> None:
    health = CommitHealth(stall_after=3.0)
    assert health.state(100.0).ready
    first = health.began(100.0)
    second = health.began(101.0)
    assert health.stalled_for(102.9) is None and health.state(102.9).ready
    assert health.stalled_for(103.0) == 3.0
    assert health.state(104.0).detail == "stalled: a commit has waited 4 s"
    health.stalled = True
    health.ended(first, "OperationalError")
    assert not health.stalled  # until the watch sees the next one stall
    assert health.state(104.5).detail == "stalled: a commit has waited 4 s"  # the second
    health.ended(second, "OperationalError")
    state = health.state(105.0)
    assert (state.ready, state.detail, state.probe) == (False, "failing: OperationalError", True)
    health.recovered()
    assert health.state(105.0).ready


@pytest.mark.parametrize("in_child", [True, False], ids=["writer-process", "writer-thread"])
def test_a_stalled_commit_answers_fast_and_recovers(
    sqlite_engine: Engine, clock: ManualClock, in_child: bool
) -> None:
    path = sqlite_engine.url.database
    assert path is not None

    async def main() -> dict[str, object]:
        process = writer_process_config(sqlite_engine) if in_child else None
        writer = Writer(sqlite_engine, clock=clock, process=process, stall_after=0.5)
        await writer.start()
        seen: dict[str, object] = {}
        try:
            assert await writer.submit(event({"id": "before", "status": "succeeded"},
                                             key="id:before", at=clock.now)) is False
            lock = sqlite3.connect(path, isolation_level=None)
            lock.execute("BEGIN IMMEDIATE")
            began = time.monotonic()
            waiting = [asyncio.ensure_future(writer.submit(
                event({"id": f"w{i}", "status": "succeeded"}, key=f"id:w{i}", at=clock.now)))
                for i in range(20)]
            answers = await asyncio.gather(*waiting, return_exceptions=True)
            seen["waited"] = time.monotonic() - began
            seen["answers"] = answers
            seen["stalled"] = writer.health.stalled
            seen["state"] = writer.health.state(time.monotonic()).detail
            refused_at = time.monotonic()
            with pytest.raises(WriterUnavailable):
                await writer.submit(event({"id": "new", "status": "succeeded"}, key="id:new",
                                          at=clock.now))
            seen["refused_in"] = time.monotonic() - refused_at
            assert probe_write(sqlite_engine, timeout=0.1) is not None  # locked
            lock.execute("ROLLBACK")
            lock.close()
            deadline = time.monotonic() + 10
            while writer.health.stalled and time.monotonic() < deadline:
                await asyncio.sleep(0.05)
            assert probe_write(sqlite_engine) is None
            seen["after"] = await writer.submit(
                event({"id": "after", "status": "succeeded"}, key="id:after", at=clock.now))
            seen["ready"] = writer.health.state(time.monotonic()).ready
        finally:
            await writer.stop()
        return seen

    seen = asyncio.run(main())
    assert isinstance(seen["waited"], float) and seen["waited"] < 2.0  # 0.5 s + the sweep
    answers = seen["answers"]
    assert isinstance(answers, list)
    assert all(isinstance(a, WriterUnavailable) for a in answers)
    assert seen["stalled"] is True and str(seen["state"]).startswith("stalled")
    assert isinstance(seen["refused_in"], float) and seen["refused_in"] < 0.1
    assert seen["after"] is False and seen["ready"] is True
    # Nothing answered 200 is missing; a refused event may be stored (its sender retries).
    assert scalar(sqlite_engine, "SELECT count(*) FROM events WHERE prediction_id IN "
                                 "('before', 'after')") == 2
