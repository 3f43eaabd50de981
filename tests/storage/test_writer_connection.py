"""The writer process's own SQLite connection: what its setup makes SQLite write to disk."""

from __future__ import annotations

import dataclasses
import hashlib
import sys
from pathlib import Path

import pytest

from hookwatch.storage.batch import NewEvent
from hookwatch.storage.engine import WRITER_TEMP_STORE, make_engine, writer_process_config
from hookwatch.storage.migrate import upgrade
from hookwatch.storage.transaction import commit_events
from hookwatch.storage.writer_child import _Connection
from tests.storage.conftest import event

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="/proc/self/io")


def written_bytes() -> int:
    """Bytes this process has passed to write calls so far (page cache or not)."""
    for line in Path("/proc/self/io").read_text().splitlines():
        if line.startswith("wchar:"):
            return int(line.split()[1])
    raise AssertionError("no wchar in /proc/self/io")


def terminal(n: int, at: float) -> NewEvent:
    # Ids in no order, as Replicate's are: each lands in an index page already written.
    key = hashlib.sha256(str(n).encode()).hexdigest()[:26]
    logs = "".join(f"{i:3d}%|##########| {i}/47 [00:04<00:00, 9.87it/s]\n" for i in range(120))
    return event({"id": key, "status": "succeeded", "model": "acme/m", "logs": logs,
                  "metrics": {"predict_time": 1.5}}, key=f"id:{key}", at=at)


def bytes_for_a_batch(tmp_path: Path, name: str, temp_store: bool) -> int:
    """Write calls, in bytes, for one 16-event transaction of terminal webhooks with logs,
    on a database already holding a few hundred (a statement journal keeps the pages a
    statement changes that were there before its transaction; new pages need no copy)."""
    engine = make_engine(f"sqlite:///{tmp_path / name}")
    upgrade(engine)
    config = writer_process_config(engine, sqlite_synchronous="FULL")
    engine.dispose()
    assert config is not None
    setup = [s for s in config.setup if temp_store or s != WRITER_TEMP_STORE]
    connection = _Connection(dataclasses.replace(config, setup=setup))
    for n in range(0, 1600, 16):
        batch = [terminal(n + i, 1000.0 + n + i) for i in range(16)]
        commit_events(connection.lend, batch, now=2000.0, dialect="sqlite", retries=1,
                      retried=[])
    batch = [terminal(5000 + i, 1700.0 + i) for i in range(16)]
    before = written_bytes()
    commit_events(connection.lend, batch, now=2000.0, dialect="sqlite", retries=1, retried=[])
    after = written_bytes()
    assert connection.conn.execute("SELECT count(*) FROM events").fetchone()[0] == 1616
    connection.conn.close()
    return after - before


def test_the_writers_statement_journals_stay_in_memory(tmp_path: Path) -> None:
    spilled = bytes_for_a_batch(tmp_path, "default.db", temp_store=False)
    kept = bytes_for_a_batch(tmp_path, "writer.db", temp_store=True)
    # The same WAL frames either way; by default SQLite also writes the statement journals
    # of a batch's upserts (over 64 KiB) to temporary files.
    assert kept < spilled - 64 * 1024, (kept, spilled)
