"""Delivery order and policy: resolutions after triggers, send_resolved, Slack pacing, nudges."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator

import pytest
from sqlalchemy import Engine
from sqlmodel import Session, col, select

from hookwatch.notifiers.outbox import Notification
from hookwatch.notifiers.registry import NotifierConfig
from hookwatch.notifiers.worker import deliver, request_delivery, start_delivery, stop_delivery
from tests.conftest import ManualClock
from tests.notifiers.helpers import (
    HOOK_SECRET,
    SLACK_PATH,
    SLACK_TOKEN,
    Receiver,
    alert,
    enqueue,
    make_runtime,
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
    runtime = make_runtime(sqlite_engine, hook(receiver.url), clock)
    enqueue(sqlite_engine, alert(), notifier="hook", now=clock.now)
    receiver.fail(1, 503)
    deliver(runtime, clock.now)
    clock.advance(1)
    enqueue(sqlite_engine, alert("resolve", resolved_at=clock.now), notifier="hook", now=clock.now)
    assert deliver(runtime, clock.now).sent == 0  # due, but its trigger is still retrying
    clock.advance(30)
    report = deliver(runtime, clock.now)
    assert report.sent == 2
    assert kinds(receiver) == ["alert.trigger", "alert.trigger", "alert.resolve"]


def test_a_resolution_of_a_trigger_that_never_arrived_is_suppressed(
    sqlite_engine: Engine, receiver: Receiver, clock: ManualClock
) -> None:
    runtime = make_runtime(sqlite_engine, hook(receiver.url), clock)
    enqueue(sqlite_engine, alert(), notifier="hook", now=clock.now)
    enqueue(sqlite_engine, alert("acknowledge", acknowledged_by="bob"), notifier="hook",
            now=clock.now)
    enqueue(sqlite_engine, alert("resolve"), notifier="hook", now=clock.now)
    receiver.fail(1, 400, body=b"bad request")
    report = deliver(runtime, clock.now)
    assert (report.failed, report.suppressed, report.sent) == (1, 2, 0)
    assert states(sqlite_engine) == [
        ("trigger", "failed", "127.0.0.1 answered HTTP 400: bad request"),
        ("acknowledge", "suppressed", "its trigger was never delivered (failed)"),
        ("resolve", "suppressed", "its trigger was never delivered (failed)"),
    ]
    # the next firing of the same alert is a new episode: its resolution goes out
    for kind in ("trigger", "resolve"):
        enqueue(sqlite_engine, alert(kind), notifier="hook", now=clock.now)
    assert deliver(runtime, clock.now).sent == 2
    assert kinds(receiver) == ["alert.trigger", "alert.trigger", "alert.resolve"]


def test_send_resolved_false_gets_triggers_only(sqlite_engine: Engine, receiver: Receiver,
                                                clock: ManualClock) -> None:
    runtime = make_runtime(sqlite_engine, hook(receiver.url, send_resolved=False), clock)
    for kind in ("trigger", "reminder", "resolve"):
        enqueue(sqlite_engine, alert(kind), notifier="hook", now=clock.now)
    report = deliver(runtime, clock.now)
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
    runtime = make_runtime(sqlite_engine, configs, clock)
    for i in range(3):
        enqueue(sqlite_engine, alert(alert_key=f"k{i}"), notifier="a", now=clock.now)
    enqueue(sqlite_engine, alert(alert_key="k0"), notifier="b", now=clock.now)
    report = deliver(runtime, clock.now)
    assert (report.sent, report.deferred) == (2, 2)  # one to each destination
    assert deliver(runtime, clock.now + 0.5).sent == 0
    assert deliver(runtime, clock.now + 1).sent == 1
    assert deliver(runtime, clock.now + 2).sent == 1
    assert len(receiver.requests) == 4


def test_slack_resolution_goes_in_the_trigger_thread(sqlite_engine: Engine,
                                                     clock: ManualClock) -> None:
    with Receiver(answer=slack_api_answer) as api:
        configs = notifier_configs({"bot": {"type": "slack", "token": SLACK_TOKEN,
                                            "channel": "C0TEST", "api_url": api.url + "/api"}})
        runtime = make_runtime(sqlite_engine, configs, clock)
        enqueue(sqlite_engine, alert(), notifier="bot", now=clock.now)
        enqueue(sqlite_engine, alert("resolve"), notifier="bot", now=clock.now)
        deliver(runtime, clock.now)
        deliver(runtime, clock.now + 1)
    trigger, resolve = (r.json() for r in api.requests)
    with Session(sqlite_engine) as session:
        first = session.exec(select(Notification).order_by(col(Notification.id))).first()
    assert first is not None and first.external_ref
    assert "thread_ts" not in trigger
    assert resolve["thread_ts"] == first.external_ref


def test_request_delivery_sends_promptly_in_the_background(
    sqlite_engine: Engine, receiver: Receiver, clock: ManualClock
) -> None:
    runtime = make_runtime(sqlite_engine, hook(receiver.url), clock)
    enqueue(sqlite_engine, alert(alert_key="early"), notifier="hook", now=clock.now)
    request_delivery(runtime)  # before start_delivery (an app without jobs): nothing happens
    assert runtime.extras["notifiers.worker"].nudger is None
    assert receiver.requests == []
    start_delivery(runtime)
    try:
        for i in range(3):
            enqueue(sqlite_engine, alert(alert_key=f"k{i}"), notifier="hook", now=clock.now)
            request_delivery(runtime)  # a burst of nudges: one pass is enough
        deadline = time.monotonic() + 10
        while len(receiver.requests) < 4 and time.monotonic() < deadline:
            time.sleep(0.01)  # waiting on another thread, not on a backoff
    finally:
        stop_delivery(runtime)
    assert len(receiver.requests) == 4
    request_delivery(runtime)  # after stop: ignored, no thread left behind
    assert not [t for t in threading.enumerate() if t.name == "hookwatch-deliver" and t.is_alive()]
