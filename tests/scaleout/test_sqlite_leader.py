"""Two `hookwatch serve` on one SQLite file: one leads, the other follows and takes over."""

from __future__ import annotations

import time
from pathlib import Path

import httpx
import pytest

from hookwatch.file_leader import FileLockLeader
from tests.reliability.helpers import Serve


def test_lock_file_leaders_in_one_process(tmp_path: Path) -> None:
    path = tmp_path / "hw.db.leader"
    first = FileLockLeader(path, name="one", poll=0.05)
    second = FileLockLeader(path, name="two", poll=0.05)
    heard: list[bool] = []
    second.subscribe(heard.append)
    first.start()
    second.start()
    try:
        assert first.is_leader and not second.is_leader
        assert second.status["leader"] == "one" and second.status["role"] == "follower"
        first.stop()
        deadline = time.monotonic() + 5
        while not second.is_leader and time.monotonic() < deadline:
            time.sleep(0.02)
        assert second.is_leader and heard == [True]
        assert second.status == {"role": "leader", "replica": "two", "leader": "two",
                                 "via": "sqlite lock file"}
    finally:
        first.stop()
        second.stop()


def role(server: Serve) -> str:
    body = httpx.get(server.url + "/readyz", timeout=5).json()
    return str(body["checks"]["leadership"]["role"])


@pytest.mark.slow
def test_a_second_serve_on_the_same_file_follows(tmp_path: Path) -> None:
    env = {"HOOKWATCH_DATABASE_URL": f"sqlite:///{tmp_path}/hw.db",
           "HOOKWATCH_INGEST_TOKEN": "t" * 32}
    first = Serve(tmp_path, env).start()
    second = Serve(tmp_path, env)
    try:
        second.start()
        assert sorted([role(first), role(second)]) == ["follower", "leader"]
        assert role(first) == "leader"
        assert "another hookwatch process" in second.log_text()
        first.kill()  # SIGKILL: the kernel frees the lock with the process
        deadline = time.monotonic() + 10
        while role(second) != "leader" and time.monotonic() < deadline:
            time.sleep(0.1)
        assert role(second) == "leader"
    finally:
        first.stop()
        second.stop()
