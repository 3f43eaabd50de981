"""The delivery worker on real databases: outages, backoff, give-up, leases, two workers."""

from __future__ import annotations

import itertools
import threading
from collections.abc import Callable, Iterator

import pytest
from fastapi import FastAPI
from prometheus_client import CollectorRegistry
from sqlalchemy import Engine
from sqlmodel import Session, col, select

from hookwatch.notifiers.claims import LEASE_SECONDS, claim
from hookwatch.notifiers.decision import BACKOFF_BASE
from hookwatch.notifiers.registry import NotifierConfig
from hookwatch.notifiers.worker import DeliveryWorker
from hookwatch.storage.tables import DeliveryAttempt, Notification
from tests.conftest import ManualClock, free_port
from tests.notifiers.helpers import (
    HOOK_SECRET,
    Receiver,
    alert,
    enqueue,
    make_worker,
    notifier_configs,
)


def hook_configs(url: str) -> dict[str, NotifierConfig]:
    return notifier_configs({"hook": {"type": "webhook", "url": url + "/alerts",
                                      "secret": HOOK_SECRET, "timeout": 5}})


def rows(engine: Engine) -> list[Notification]:
    with Session(engine) as session:
        return list(session.exec(select(Notification).order_by(col(Notification.id))))


def attempts(engine: Engine) -> list[DeliveryAttempt]:
    with Session(engine) as session:
        return list(session.exec(select(DeliveryAttempt).order_by(col(DeliveryAttempt.id))))


def drain(worker: DeliveryWorker, clock: ManualClock, engine: Engine, *, limit: int = 50) -> int:
    """Run deliver, moving the clock to the next due row, until nothing is pending."""
    passes = 0
    while passes < limit:
        worker.deliver(clock.now)
        passes += 1
        waiting = [r.due_at for r in rows(engine) if r.state in ("pending", "sending")]
        if not waiting:
            return passes
        clock.now = max(clock.now, min(waiting))
    raise AssertionError("still pending")


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    with Receiver() as server:
        yield server


def test_deliver_is_a_scheduled_job(app_factory: Callable[..., FastAPI]) -> None:
    """The app schedules its own DeliveryWorker, every deliver_interval, nudged by new rows."""
    app = app_factory()
    runtime = app.state.runtime
    spec = next(s for s in app.state.jobs.specs if s.name == "deliver")
    assert spec.fn == runtime.delivery.run
    assert spec.interval == runtime.settings.deliver_interval
    assert spec.nudge is runtime.nudges.deliver and spec.leader_only


def test_outage_then_every_notification_arrives_exactly_once(
    engine: Engine, receiver: Receiver, clock: ManualClock
) -> None:
    worker = make_worker(engine, hook_configs(receiver.url))
    ids = [enqueue(engine, alert(alert_key=f"rule:deployment:acme/m{i}"), notifier="hook",
                   now=clock.now) for i in range(5)]
    receiver.fail(3, 503)
    began = clock.now
    drain(worker, clock, engine)
    assert len(receiver.requests) == 3 + 5  # one probe per try while down, then each once
    delivered = [r.headers["webhook-id"] for r in receiver.requests[3:]]
    assert sorted(delivered) == sorted(f"msg_hookwatch_{i}" for i in ids)
    assert all(r.state == "sent" for r in rows(engine))
    outcomes = [(a.outcome, a.http_status) for a in attempts(engine)]
    assert outcomes == [("retry", 503)] * 3 + [("sent", 200)] * 5
    retries = [a for a in attempts(engine) if a.outcome == "retry"]
    assert retries[0].error == "127.0.0.1 answered HTTP 503: unavailable"
    # backoff: 10 s, 20 s, 40 s ceilings with equal jitter, no sleeping (the clock moved)
    times = [a.at for a in attempts(engine)[:4]]  # three retries, then the success
    for n, gap in enumerate(b - a for a, b in itertools.pairwise(times)):
        ceiling = BACKOFF_BASE * 2**n
        assert ceiling / 2 <= gap <= ceiling
    assert clock.now - began < 70


def test_connection_refused_then_the_receiver_comes_up(sqlite_engine: Engine,
                                                       clock: ManualClock) -> None:
    port = free_port()
    worker = make_worker(sqlite_engine, hook_configs(f"http://127.0.0.1:{port}"))
    for i in range(3):
        enqueue(sqlite_engine, alert(alert_key=f"k{i}"), notifier="hook", now=clock.now)
    report = worker.deliver(clock.now)
    assert (report.retried, report.deferred, report.sent) == (1, 2, 0)
    (failed,) = attempts(sqlite_engine)
    assert failed.outcome == "retry" and failed.http_status is None
    assert failed.error and failed.error.startswith("cannot reach 127.0.0.1: ConnectError")
    with Receiver(port=port) as late:
        clock.advance(15)
        worker.deliver(clock.now)
        assert len(late.requests) == 3
    assert [r.attempts for r in rows(sqlite_engine)] == [2, 1, 1]


def test_retry_after_is_honoured(sqlite_engine: Engine, receiver: Receiver,
                                 clock: ManualClock) -> None:
    worker = make_worker(sqlite_engine, hook_configs(receiver.url))
    enqueue(sqlite_engine, alert(), notifier="hook", now=clock.now)
    receiver.fail(1, 429, {"Retry-After": "120"})
    worker.deliver(clock.now)
    (row,) = rows(sqlite_engine)
    assert row.state == "pending" and row.due_at == clock.now + 120
    assert worker.deliver(clock.now + 119.9).sent == 0
    assert worker.deliver(clock.now + 120).sent == 1
    assert len(receiver.requests) == 2


def test_permanent_failure_stops_at_once(sqlite_engine: Engine, receiver: Receiver,
                                         clock: ManualClock) -> None:
    worker = make_worker(sqlite_engine, hook_configs(receiver.url))
    enqueue(sqlite_engine, alert(), notifier="hook", now=clock.now)
    receiver.fail(1, 404, body=b"no such hook")
    assert worker.deliver(clock.now).failed == 1
    assert worker.deliver(clock.now + 3600).failed == 0
    (row,) = rows(sqlite_engine)
    assert (row.state, row.attempts) == ("failed", 1)
    assert row.last_error == "127.0.0.1 answered HTTP 404: no such hook"
    assert [(a.outcome, a.http_status) for a in attempts(sqlite_engine)] == [("failed", 404)]
    assert len(receiver.requests) == 1


def test_gives_up_after_the_maximum_age(sqlite_engine: Engine, receiver: Receiver,
                                        clock: ManualClock) -> None:
    worker = make_worker(sqlite_engine, hook_configs(receiver.url), max_age=300)
    enqueue(sqlite_engine, alert(), notifier="hook", now=clock.now)
    receiver.fail(100, 500)
    drain(worker, clock, sqlite_engine)
    (row,) = rows(sqlite_engine)
    assert row.state == "failed"
    assert row.last_error and row.last_error.startswith(f"gave up after {row.attempts} attempt(s)")
    assert row.last_error.endswith("127.0.0.1 answered HTTP 500: unavailable")
    assert 3 <= row.attempts <= 8
    assert attempts(sqlite_engine)[-1].outcome == "failed"
    assert all(a.at - row.created_at <= 300 for a in attempts(sqlite_engine))


def test_a_lost_lease_is_sent_after_it_expires(sqlite_engine: Engine, receiver: Receiver,
                                               clock: ManualClock) -> None:
    worker = make_worker(sqlite_engine, hook_configs(receiver.url))
    enqueue(sqlite_engine, alert(), notifier="hook", now=clock.now)
    (taken,) = claim(sqlite_engine, now=clock.now, limit=10, exclude=set())  # then "crashes"
    assert claim(sqlite_engine, now=clock.now, limit=10, exclude=set()) == []
    assert worker.deliver(clock.now + LEASE_SECONDS - 1).sent == 0
    assert worker.deliver(clock.now + LEASE_SECONDS).sent == 1
    assert receiver.requests[0].headers["webhook-id"] == f"msg_hookwatch_{taken.id}"


def test_two_workers_never_send_one_row_twice(engine: Engine, receiver: Receiver,
                                              clock: ManualClock) -> None:
    configs = hook_configs(receiver.url)
    workers = [make_worker(engine, configs) for _ in range(3)]
    for i in range(40):
        enqueue(engine, alert(alert_key=f"k{i % 13}"), notifier="hook", now=clock.now)
    errors: list[BaseException] = []

    def run(worker: DeliveryWorker) -> None:
        try:
            worker.deliver(clock.now)
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=run, args=(w,)) for w in workers]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert errors == []
    ids = [r.headers["webhook-id"] for r in receiver.requests]
    assert len(ids) == len(set(ids)) == 40
    assert all(r.state == "sent" and r.attempts == 1 for r in rows(engine))


def test_rows_for_a_notifier_no_longer_configured_fail(sqlite_engine: Engine,
                                                       clock: ManualClock) -> None:
    worker = make_worker(sqlite_engine, {})
    enqueue(sqlite_engine, alert(), notifier="gone", now=clock.now)
    assert worker.deliver(clock.now).failed == 1
    assert rows(sqlite_engine)[0].last_error == "notifier 'gone' is not in the config (any more)"


def test_a_pass_may_run_one_channel_only(engine: Engine, receiver: Receiver,
                                         clock: ManualClock) -> None:
    """deliver(only=...) claims that channel's rows; the others stay pending for their pass."""
    configs = notifier_configs({
        name: {"type": "webhook", "url": f"{receiver.url}/{name}", "secret": HOOK_SECRET}
        for name in ("a", "b")
    })
    worker = make_worker(engine, configs)
    for i, name in enumerate(("a", "b", "a")):
        enqueue(engine, alert(alert_key=f"rule:deployment:m{i}"), notifier=name, now=clock.now)
    assert worker.deliver(clock.now, only={"a"}).sent == 2
    assert {r.path for r in receiver.requests} == {"/a"}
    assert [(r.notifier, r.state) for r in rows(engine)] == [
        ("a", "sent"), ("b", "pending"), ("a", "sent")]
    assert worker.deliver(clock.now, only={"b"}).sent == 1
    assert all(r.state == "sent" for r in rows(engine))


def test_attempts_are_counted_in_metrics(sqlite_engine: Engine, receiver: Receiver,
                                         clock: ManualClock) -> None:
    registry = CollectorRegistry()
    worker = make_worker(sqlite_engine, hook_configs(receiver.url), registry=registry)
    enqueue(sqlite_engine, alert(), notifier="hook", now=clock.now)
    receiver.fail(1, 500)
    drain(worker, clock, sqlite_engine)
    value = registry.get_sample_value
    labels = {"notifier": "hook"}
    assert value("hookwatch_notification_attempts_total", {**labels, "outcome": "retry"}) == 1
    assert value("hookwatch_notification_attempts_total", {**labels, "outcome": "sent"}) == 1
