"""Scale-out fixtures: advisory-lock leaders on the test's PostgreSQL schema, stopped after."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest
from sqlalchemy import Engine

from hookwatch.leader import AdvisoryLockLeader


@pytest.fixture
def leaders(pg_engine: Engine) -> Iterator[Callable[..., AdvisoryLockLeader]]:
    made: list[AdvisoryLockLeader] = []

    def make(name: str, poll: float = 0.1, **kwargs: Any) -> AdvisoryLockLeader:
        leader = AdvisoryLockLeader(pg_engine, name=name, poll=poll, **kwargs)
        made.append(leader)
        return leader

    yield make
    for leader in made:
        leader.stop()
