"""Leader election over a PostgreSQL advisory lock, and the leader-only jobs it gates."""

from __future__ import annotations

import uuid
from collections.abc import Callable

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import Engine, create_engine, text
from sqlalchemy.engine import make_url

from hookwatch.app import create_app
from hookwatch.file_leader import FileLockLeader
from hookwatch.jobs import JobSpec
from hookwatch.leader import AdvisoryLockLeader, SoleLeader, leadership_for
from hookwatch.nudge import Nudge
from hookwatch.storage.engine import make_engine
from tests.conftest import POSTGRES_URL, ManualClock, make_settings
from tests.scaleout.replicas import terminate, until

pytestmark = pytest.mark.postgres


class Monotonic:
    """An injected monotonic clock for the lease."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now




def test_sqlite_process_always_leads() -> None:
    leader = SoleLeader("solo")
    seen: list[bool] = []
    leader.subscribe(seen.append)
    assert leader.is_leader and seen == [True]
    assert leader.describe()["role"] == "leader"


def test_one_leads_the_other_follows_and_takes_over(
    pg_engine: Engine, leaders: Callable[..., AdvisoryLockLeader]
) -> None:
    a, b = leaders("replica-a"), leaders("replica-b")
    assert a.poll_once() is True
    assert b.poll_once() is False
    assert b.describe() == {"role": "follower", "replica": "replica-b", "leader": "replica-a",
                            "via": "postgresql advisory lock"}
    assert a.status["role"] == "leader"  # the dict /readyz shows, updated in place

    terminate(pg_engine, "replica-a")
    until(b.poll_once)  # the lock is free once the server has ended a's session
    assert b.is_leader and b.status["leader"] == "replica-b"
    assert a.poll_once() is False  # a notices its session is gone and steps down...
    assert a.poll_once() is False  # ...and, reconnected, finds b leading
    assert a.describe()["leader"] == "replica-b"
    assert (a.acquired, b.acquired) == (1, 1)


def test_stopping_the_leader_hands_over_at_once(
    leaders: Callable[..., AdvisoryLockLeader],
) -> None:
    a, b = leaders("replica-a"), leaders("replica-b")
    changes: list[bool] = []
    b.subscribe(changes.append)
    a.start()
    b.start()
    assert a.is_leader and not b.is_leader
    a.stop()
    assert not a.is_leader
    until(lambda: b.is_leader, timeout=5)
    assert changes == [True]


def test_a_leader_that_cannot_confirm_its_session_stops_leading(pg_engine: Engine) -> None:
    clock = Monotonic()
    leader = AdvisoryLockLeader(pg_engine, name="lonely", poll=1.0, monotonic=clock)
    try:
        assert leader.poll_once() and leader.lease == 3.0
        clock.now += 2.9
        assert leader.is_leader
        clock.now += 0.2  # no successful poll for longer than the lease
        assert not leader.is_leader
        assert leader.poll_once()
    finally:
        leader.stop()


def test_lock_is_scoped_to_the_schema(pg_engine: Engine, postgres_url: str) -> None:
    """Two installations (two schemas) in one database each have their own leader."""
    schema = "t_" + uuid.uuid4().hex[:12]
    admin = create_engine(POSTGRES_URL, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f"CREATE SCHEMA {schema}"))
    other_url = make_url(postgres_url).update_query_dict({"options": f"-csearch_path={schema}"})
    other = make_engine(other_url.render_as_string(hide_password=False))
    first = AdvisoryLockLeader(pg_engine, name="first")
    second = AdvisoryLockLeader(other, name="second")
    try:
        assert first.poll_once() and second.poll_once()
    finally:
        first.stop()
        second.stop()
        other.dispose()
        with admin.connect() as conn:
            conn.execute(text(f"DROP SCHEMA {schema} CASCADE"))
        admin.dispose()


def test_leadership_for_picks_by_dialect(pg_engine: Engine, sqlite_url: str) -> None:
    lite = make_engine(sqlite_url)
    try:
        assert isinstance(leadership_for(lite), FileLockLeader)
        assert isinstance(leadership_for(create_engine("sqlite://")), SoleLeader)
        assert isinstance(leadership_for(pg_engine), AdvisoryLockLeader)
    finally:
        lite.dispose()


def test_two_apps_one_runs_the_leader_jobs(postgres_url: str, clock: ManualClock) -> None:
    """Two replicas in one process: only the leader's jobs run; /readyz and /metrics say who
    leads; when the leader shuts down, the other runs its jobs at once."""
    ran: list[str] = []
    nudges: dict[str, Nudge] = {}  # nudges (like the evaluator's) run on the leader only

    def wired() -> list[str]:
        return [name for name, nudge in nudges.items() if nudge.running]

    def spec(app_name: str, leader_only: bool = True) -> JobSpec:
        def job(_now: float) -> None:
            ran.append(f"{app_name}:{'leader' if leader_only else 'every'}")

        nudge = None
        if leader_only:
            nudge = nudges[app_name] = Nudge(app_name, lambda: None, debounce=1.0)
        return JobSpec("probe" if leader_only else "local", job, 3600.0,
                       leader_only=leader_only, nudge=nudge)

    apps = {}
    for name, port in (("a", 18001), ("b", 18002)):
        app = create_app(make_settings(postgres_url, port=port), clock=clock)
        app.state.jobs.specs = [spec(name), spec(name, leader_only=False)]
        apps[name] = app
    with TestClient(apps["a"]) as a, TestClient(apps["b"]) as b:
        for name in ("a", "b"):
            for job in ("probe", "local"):
                apps[name].state.jobs.run_now(job)
        assert sorted(ran) == ["a:every", "a:leader", "b:every"]
        assert wired() == ["a"]
        ready_a, ready_b = a.get("/readyz").json(), b.get("/readyz").json()
        assert ready_a["checks"]["leadership"]["role"] == "leader"
        assert ready_b["checks"]["leadership"]["role"] == "follower"
        assert ready_b["checks"]["leadership"]["leader"] == \
                ready_a["checks"]["leadership"]["replica"]
        assert b.get("/readyz").status_code == 200  # a follower is ready to serve
        assert "hookwatch_leader 1.0" in a.get("/metrics").text
        assert "hookwatch_leader 0.0" in b.get("/metrics").text
    b2 = create_app(make_settings(postgres_url, port=18003), clock=clock)
    b2.state.jobs.specs = [spec("b2")]
    a2 = create_app(make_settings(postgres_url, port=18004), clock=clock)
    a2.state.jobs.specs = [spec("a2")]
    first: TestClient | None = TestClient(a2).__enter__()  # started first, so it leads
    try:
        with TestClient(b2) as b:
            assert b.get("/readyz").json()["checks"]["leadership"]["role"] == "follower"
            assert wired() == ["a2"]
            assert first is not None
            first.__exit__(None, None, None)  # a2 shuts down and releases the lock
            first = None
            took = until(lambda: "b2:leader" in ran, timeout=5)
            assert took < 3  # one poll (1 s) and the new leader's jobs run at once
            assert wired() == ["b2"]
            assert b.get("/readyz").json()["checks"]["leadership"]["role"] == "leader"
            assert "hookwatch_leader 1.0" in b.get("/metrics").text
    finally:
        if first is not None:
            first.__exit__(None, None, None)
    assert "a2:leader" not in ran
