"""Delivery order and policy: resolutions after triggers, send_resolved, Slack pacing, nudges."""

from __future__ import annotations

import threading
from collections.abc import Iterator

import pytest
from sqlalchemy import Engine
from sqlmodel import Session, col, select

from hookwatch.notifiers.registry import NotifierConfig
from hookwatch.nudge import Nudge
from hookwatch.runtime import DELIVER_DEBOUNCE
from hookwatch.storage.tables import Notification
from tests.conftest import ManualClock
from tests.notifiers.helpers import (
    HOOK_SECRET,
    SLACK_PATH,
    SLACK_TOKEN,
    Receiver,
    alert,
    enqueue,
    make_worker,
    notifier_configs,
    slack_api_answer,
)


def states(engine: Engine) -> list[tuple[str, str, str | None]]:
    with Session(engine) as session:
        query = select(Notification).order_by(col(Notification.id))
        return [(r.kind, r.state, r.last_error) for r in session.exec(query)]


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    with Receiver() as server:
        yield server


def hook(url: str, **extra: object) -> dict[str, NotifierConfig]:
    return notifier_configs({"hook": {"type": "webhook", "url": url + "/alerts",
                                      "secret": HOOK_SECRET, **extra}})


def kinds(receiver: Receiver) -> list[str]:
    return [r.json()["type"] for r in receiver.requests if r.body]


def test_a_resolution_waits_for_its_retrying_trigger(sqlite_engine: Engine, receiver: Receiver,
                                                     clock: ManualClock) -> None:
    worker = make_worker(sqlite_engine, hook(receiver.url))
    enqueue(sqlite_engine, alert(), notifier="hook", now=clock.now)
    receiver.fail(1, 503)
    worker.deliver(clock.now)
    clock.advance(1)
    enqueue(sqlite_engine, alert("resolve", resolved_at=clock.now), notifier="hook", now=clock.now)
    assert worker.deliver(clock.now).sent == 0  # due, but its trigger is still retrying
    clock.advance(30)
    report = worker.deliver(clock.now)
    assert report.sent == 2
    assert kinds(receiver) == ["alert.trigger", "alert.trigger", "alert.resolve"]


def test_a_resolution_of_a_trigger_that_never_arrived_is_suppressed(
    sqlite_engine: Engine, receiver: Receiver, clock: ManualClock
) -> None:
    worker = make_worker(sqlite_engine, hook(receiver.url))
    enqueue(sqlite_engine, alert(), notifier="hook", now=clock.now)
    enqueue(sqlite_engine, alert("acknowledge", acknowledged_by="bob"), notifier="hook",
            now=clock.now)
    enqueue(sqlite_engine, alert("resolve"), notifier="hook", now=clock.now)
    receiver.fail(1, 400, body=b"bad request")
    report = worker.deliver(clock.now)
    assert (report.failed, report.suppressed, report.sent) == (1, 2, 0)
    assert states(sqlite_engine) == [
        ("trigger", "failed", "127.0.0.1 answered HTTP 400: bad request"),
        ("acknowledge", "suppressed", "its trigger was never delivered (failed)"),
        ("resolve", "suppressed", "its trigger was never delivered (failed)"),
    ]
    # the next firing of the same alert is a new episode: its resolution goes out
    for kind in ("trigger", "resolve"):
        enqueue(sqlite_engine, alert(kind), notifier="hook", now=clock.now)
    assert worker.deliver(clock.now).sent == 2
    assert kinds(receiver) == ["alert.trigger", "alert.trigger", "alert.resolve"]


def test_send_resolved_false_gets_triggers_only(sqlite_engine: Engine, receiver: Receiver,
                                                clock: ManualClock) -> None:
    worker = make_worker(sqlite_engine, hook(receiver.url, send_resolved=False))
    for kind in ("trigger", "reminder", "resolve"):
        enqueue(sqlite_engine, alert(kind), notifier="hook", now=clock.now)
    report = worker.deliver(clock.now)
    assert (report.sent, report.suppressed) == (2, 1)
    assert kinds(receiver) == ["alert.trigger", "alert.reminder"]
    assert states(sqlite_engine)[2] == ("resolve", "suppressed",
                                        "send_resolved is false for this notifier")


def test_slack_gets_one_message_a_second_per_destination(sqlite_engine: Engine,
                                                         receiver: Receiver,
                                                         clock: ManualClock) -> None:
    configs = notifier_configs({
        "a": {"type": "slack", "webhook_url": receiver.url + SLACK_PATH},
        "b": {"type": "slack", "webhook_url": receiver.url + SLACK_PATH + "other"},
    })
    worker = make_worker(sqlite_engine, configs)
    for i in range(3):
        enqueue(sqlite_engine, alert(alert_key=f"k{i}"), notifier="a", now=clock.now)
    enqueue(sqlite_engine, alert(alert_key="k0"), notifier="b", now=clock.now)
    report = worker.deliver(clock.now)
    assert (report.sent, report.deferred) == (2, 2)  # one to each destination
    assert worker.deliver(clock.now + 0.5).sent == 0
    assert worker.deliver(clock.now + 1).sent == 1
    assert worker.deliver(clock.now + 2).sent == 1
    assert len(receiver.requests) == 4


def test_slack_resolution_goes_in_the_trigger_thread(sqlite_engine: Engine,
                                                     clock: ManualClock) -> None:
    with Receiver(answer=slack_api_answer) as api:
        configs = notifier_configs({"bot": {"type": "slack", "token": SLACK_TOKEN,
                                            "channel": "C0TEST", "api_url": api.url + "/api"}})
        worker = make_worker(sqlite_engine, configs)
        enqueue(sqlite_engine, alert(), notifier="bot", now=clock.now)
        enqueue(sqlite_engine, alert("resolve"), notifier="bot", now=clock.now)
        worker.deliver(clock.now)
        worker.deliver(clock.now + 1)
    trigger, resolve = (r.json() for r in api.requests)
    with Session(sqlite_engine) as session:
        first = session.exec(select(Notification).order_by(col(Notification.id))).first()
    assert first is not None and first.external_ref
    assert "thread_ts" not in trigger
    assert resolve["thread_ts"] == first.external_ref


def test_the_delivery_nudge_sends_promptly_in_the_background(
    sqlite_engine: Engine, receiver: Receiver, clock: ManualClock
) -> None:
    """The shell's delivery nudge (as create_app builds it) over a real worker."""
    worker = make_worker(sqlite_engine, hook(receiver.url))
    nudge = Nudge("deliver", lambda: worker.deliver(clock.now), debounce=DELIVER_DEBOUNCE)
    enqueue(sqlite_engine, alert(alert_key="early"), notifier="hook", now=clock.now)
    nudge.poke()  # before start (an app without jobs, a follower): nothing happens
    assert nudge.wait_idle(0) and receiver.requests == []
    nudge.start()
    try:
        for i in range(3):
            enqueue(sqlite_engine, alert(alert_key=f"k{i}"), notifier="hook", now=clock.now)
            nudge.poke()  # a burst of nudges: one pass is enough
        assert nudge.wait_idle(10)  # until the pass it scheduled has run
    finally:
        nudge.stop()
        worker.close()
    assert len(receiver.requests) == 4
    nudge.poke()  # after stop: ignored, no thread left behind
    assert nudge.wait_idle(0)
    assert not [t for t in threading.enumerate() if t.name.startswith("hookwatch-deliver")
                and t.is_alive()]
