"""The leader's session LISTENs to the failure channel: only the leader hears a NOTIFY, a new
leader hears the next one, and a lost session costs nothing but a reconnect."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

import pytest
from sqlalchemy import Engine, text

from hookwatch.leader import AdvisoryLockLeader, SoleLeader
from hookwatch.storage.batch import FAILED_CHANNEL
from tests.scaleout.replicas import terminate, until

pytestmark = pytest.mark.postgres


class Heard:
    """A notification handler that records when it ran."""

    def __init__(self) -> None:
        self.at: list[float] = []
        self.threads: set[str] = set()

    def __call__(self) -> None:
        self.at.append(time.monotonic())
        self.threads.add(threading.current_thread().name)


def notify(pg_engine: Engine) -> float:
    """What a writer's batch does when it counted a failure; returns when it committed."""
    with pg_engine.begin() as conn:
        conn.execute(text(f"SELECT pg_notify({FAILED_CHANNEL}, '')"))
    return time.monotonic()


def sessions(pg_engine: Engine, application_name: str) -> int:
    with pg_engine.connect() as conn:
        return int(conn.execute(
            text("SELECT count(*) FROM pg_stat_activity WHERE application_name = :n"),
            {"n": application_name},
        ).scalar_one())


def test_only_the_leader_hears_and_a_new_leader_takes_over_listening(
    pg_engine: Engine, leaders: Callable[..., AdvisoryLockLeader]
) -> None:
    a, b = leaders("replica-a"), leaders("replica-b")
    heard_a, heard_b = Heard(), Heard()
    a.listen(FAILED_CHANNEL, heard_a)
    b.listen(FAILED_CHANNEL, heard_b)
    a.start()
    b.start()
    assert a.is_leader and not b.is_leader

    sent = notify(pg_engine)
    until(lambda: len(heard_a.at) == 1, timeout=3)
    assert heard_a.at[0] - sent < 0.5  # as it arrives, not at the next poll
    assert heard_a.threads == {"hookwatch-leader"}
    notify(pg_engine)
    until(lambda: len(heard_a.at) == 2, timeout=3)
    assert heard_b.at == []  # a follower does not LISTEN

    # The leader's session dies (a crash, a network cut): no error escapes a's thread, and
    # whichever replica takes the free lock first LISTENs on its new session.
    terminate(pg_engine, "replica-a")
    until(lambda: a.acquired + b.acquired == 2 and (a.is_leader or b.is_leader), timeout=5)
    assert a.status["role"] != b.status["role"]
    first, second = (a, b) if a.is_leader else (b, a)
    ears = {a: heard_a, b: heard_b}
    before = {r: len(ears[r].at) for r in (a, b)}
    sent = notify(pg_engine)
    until(lambda: len(ears[first].at) == before[first] + 1, timeout=3)
    assert ears[first].at[-1] - sent < 0.5
    assert len(ears[second].at) == before[second]

    # A clean hand-over: the leader steps down, the other leads and hears the next one.
    first.stop()
    until(lambda: second.is_leader, timeout=5)
    sent = notify(pg_engine)
    until(lambda: len(ears[second].at) == before[second] + 1, timeout=3)
    assert ears[second].at[-1] - sent < 0.5
    assert len(ears[first].at) == before[first] + 1


def test_a_channel_added_while_leading_is_heard_before_the_next_poll(
    pg_engine: Engine, leaders: Callable[..., AdvisoryLockLeader]
) -> None:
    leader = leaders("replica-a", poll=30.0)
    leader.start()
    assert leader.is_leader
    heard = Heard()
    leader.listen(FAILED_CHANNEL, heard)
    sent = notify(pg_engine)
    until(lambda: bool(heard.at), timeout=3)
    assert heard.at[0] - sent < 0.5
    leader.stop()
    until(lambda: sessions(pg_engine, "hookwatch replica-a") == 0, timeout=5)  # its LISTEN with it


def test_sqlite_leader_has_nothing_to_listen_to() -> None:
    heard = Heard()
    SoleLeader("solo").listen(FAILED_CHANNEL, heard)
    assert heard.at == []
