"""Channels isolated, against misbehaving local receivers: one that hangs, one that trickles, one
that answers 50 MB, one that rate-limits; each holds up only its own channel. A notifier that
keeps failing is shown (/readyz, /metrics, the page) and handed to its fallback."""

from __future__ import annotations

import os
import signal
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from sqlalchemy import Engine
from sqlmodel import Session, col, select

from hookwatch.config import Config, ConfigError, parse_config
from hookwatch.notifiers.base import NotifyError, SendContext
from hookwatch.notifiers.health import PERMANENT_STREAK, load
from hookwatch.notifiers.http import MAX_ANSWER_BYTES
from hookwatch.notifiers.registry import build
from hookwatch.storage.engine import make_engine
from hookwatch.storage.tables import Notification
from tests.conftest import SECRET, ManualClock
from tests.notifiers.helpers import (
    HOOK_SECRET,
    ROUTING_KEY,
    SLACK_PATH,
    Hanging,
    Huge,
    Receiver,
    Trickling,
    alert,
    enqueue,
    make_worker,
    notifier_configs,
    pagerduty_answer,
)
from tests.reliability.helpers import Serve

NOW = 1_795_000_100.0


def slack(url: str, **extra: Any) -> dict[str, Any]:
    return {"type": "slack", "webhook_url": url + SLACK_PATH, **extra}


def pagerduty(url: str, **extra: Any) -> dict[str, Any]:
    return {"type": "pagerduty", "routing_key": ROUTING_KEY, "events_url": url + "/v2/enqueue",
            **extra}


def hook(url: str, **extra: Any) -> dict[str, Any]:
    return {"type": "webhook", "url": url + "/alerts", "secret": HOOK_SECRET, **extra}


def states(engine: Engine) -> dict[str, list[str]]:
    with Session(engine) as session:
        found: dict[str, list[str]] = {}
        for row in session.exec(select(Notification).order_by(col(Notification.id))):
            found.setdefault(row.notifier, []).append(row.state)
        return found


def wait_for(predicate: Callable[[], bool], timeout: float = 10.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.01)
    return predicate()


def test_a_hanging_channel_holds_up_only_itself(sqlite_engine: Engine) -> None:
    with Hanging() as hung, Receiver(answer=pagerduty_answer) as pd, Receiver() as team:
        configs = notifier_configs({
            "stuck": slack(hung.url, timeout=5), "oncall": pagerduty(pd.url),
            "team": slack(team.url)})
        worker = make_worker(sqlite_engine, configs)
        for name in ("stuck", "oncall", "team"):
            enqueue(sqlite_engine, alert(), notifier=name, now=NOW)
        worker.run(NOW)  # the scheduler's job: starts each channel and returns
        told = {"stuck": ["sending"], "oncall": ["sent"], "team": ["sent"]}
        assert wait_for(lambda: states(sqlite_engine) == told)
        # The healthy channels were told while the hanging one still waits for its answer.
        stuck = worker.senders["stuck"].thread
        assert hung.connections == 1 and stuck is not None and stuck.is_alive()
        assert len(pd.requests) == 1 and len(team.requests) == 1
        assert worker.wait_idle(15)
        # The whole exchange had its deadline: a temporary failure, retried later.
        with Session(sqlite_engine) as session:
            row = session.exec(select(Notification).where(Notification.notifier == "stuck")).one()
        assert row.state == "pending" and row.due_at > NOW
        assert row.last_error is not None and "did not answer in time" in row.last_error
        worker.close()


def test_a_trickling_answer_is_cut_at_the_deadline() -> None:
    with Trickling(every=0.05) as trickle:
        for options in (pagerduty(trickle.url, timeout=1), hook(trickle.url, timeout=1),
                        slack(trickle.url, timeout=1)):
            notifier = build(notifier_configs({"x": options})["x"])
            started = time.monotonic()
            with pytest.raises(NotifyError) as info:
                notifier.send(alert(), SendContext(now=NOW, notification_id=1))
            took = time.monotonic() - started
            notifier.close()
            assert info.value.retryable and "did not answer in time" in info.value.detail
            # Each byte came well within any read timeout; only the whole-exchange deadline
            # (1 s) ends it, long before the 10 KB answer would (over 8 minutes).
            assert took < 5, took


def test_abort_ends_a_trickling_send_at_once() -> None:
    """What SIGTERM does (DeliveryWorker.close): the send in flight stops now."""
    with Trickling(every=0.05) as trickle:
        notifier = build(notifier_configs({"x": pagerduty(trickle.url, timeout=60)})["x"])
        errors: list[NotifyError] = []

        def send() -> None:
            try:
                notifier.send(alert(), SendContext(now=NOW))
            except NotifyError as exc:
                errors.append(exc)

        thread = threading.Thread(target=send, daemon=True)
        thread.start()
        assert trickle.connected.wait(5) and wait_for(lambda: trickle.written > 3)
        notifier.abort()
        thread.join(5)
        assert not thread.is_alive() and errors and errors[0].retryable


def test_a_50_mb_answer_is_not_read() -> None:
    with Huge() as huge:
        notifier = build(notifier_configs({"x": hook(huge.url)})["x"])
        result = notifier.send(alert(), SendContext(now=NOW, notification_id=1))
        notifier.close()
        assert result is not None and result.http_status == 200
        assert wait_for(lambda: huge.stop.is_set() or huge.written < huge.size, 5)
        time.sleep(0.2)
        # The client read its few KiB and closed; the server could only fill socket buffers.
        assert huge.written < 10 * 1024 * 1024, huge.written
    assert MAX_ANSWER_BYTES <= 8192


def test_a_429_with_retry_after_postpones_its_channel_only(sqlite_engine: Engine) -> None:
    with Receiver() as limited, Receiver(answer=pagerduty_answer) as pd:
        limited.fail(1, 429, {"Retry-After": "3600"}, b"rate_limited")
        configs = notifier_configs({"team": slack(limited.url), "oncall": pagerduty(pd.url)})
        worker = make_worker(sqlite_engine, configs)
        for name in ("team", "oncall"):
            enqueue(sqlite_engine, alert(), notifier=name, now=NOW)
            enqueue(sqlite_engine, alert(alert_key="other"), notifier=name, now=NOW)
        report = worker.deliver(NOW)
        assert (report.sent, report.retried) == (2, 1)
        with Session(sqlite_engine) as session:
            team = list(session.exec(select(Notification).where(Notification.notifier == "team")))
        # Retry-After is honoured, and the channel's other row waits as long.
        assert [r.state for r in team] == ["pending", "pending"]
        assert all(r.due_at >= NOW + 3600 for r in team)
        assert len(limited.requests) == 1 and len(pd.requests) == 2
        health = load(sqlite_engine)
        assert health["team"].failing_since == NOW and not health["team"].failing(NOW + 60)
        # An hour of temporary failures: the notifier counts as failing.
        assert health["team"].failing(NOW + 3600)
        worker.close()


def test_a_notifier_that_keeps_failing_goes_to_its_fallback(
        sqlite_engine: Engine, app_factory: Callable[..., FastAPI], clock: ManualClock) -> None:
    with Receiver() as broken, Receiver(answer=pagerduty_answer) as pd:
        broken.answer = lambda _r: (404, {}, b"no_service")  # permanent, every time
        tables = {"team": slack(broken.url, fallback="oncall"), "oncall": pagerduty(pd.url)}
        configs = notifier_configs(tables)
        worker = make_worker(sqlite_engine, configs)
        for i in range(PERMANENT_STREAK):
            enqueue(sqlite_engine, alert(alert_key=f"a{i}"), notifier="team", now=NOW + i)
            worker.deliver(NOW + i + 1)
        assert len(broken.requests) == PERMANENT_STREAK
        # The fifth failure made it failing: that row went on to the fallback at once.
        assert states(sqlite_engine)["team"] == ["failed"] * PERMANENT_STREAK
        assert len(pd.requests) == 1
        enqueue(sqlite_engine, alert(alert_key="later"), notifier="team", now=NOW + 10)
        report = worker.deliver(NOW + 10)
        assert report.rerouted == 1 and report.sent == 1
        assert len(broken.requests) == PERMANENT_STREAK  # not tried: handed over untried
        assert [r.json()["dedup_key"] for r in pd.requests] == ["a4", "later"]
        worker.close()

        config = Config(notifiers=configs)
        with TestClient(app_factory(database_url=str(sqlite_engine.url), config=config)) as client:
            clock.now = NOW + 20
            checks = client.get("/readyz").json()["checks"]
            assert checks["notifiers"]["oncall"] == "ok"
            assert checks["notifiers"]["team"].startswith("failing: 5 permanent failures")
            assert 'hookwatch_notifier_failing{notifier="team"} 1.0' in client.get("/metrics").text
            assert 'hookwatch_notifier_failing{notifier="oncall"} 0.0' in client.get(
                "/metrics").text
            page = client.get("/").text
            assert "1 notifier failing" in page and "<code>team</code>" in page


@pytest.mark.parametrize(("tables", "problem"), [
    ({"a": {"fallback": "nope"}}, "notifiers.a.fallback: unknown notifier 'nope'"),
    ({"a": {"fallback": "a"}}, "notifiers.a.fallback: a notifier cannot be its own fallback"),
    ({"a": {"fallback": "b"}, "b": {"fallback": "a"}},
     "notifiers.a.fallback: fallbacks form a cycle: a -> b -> a"),
])
def test_fallbacks_are_checked(tables: dict[str, dict[str, Any]], problem: str) -> None:
    raw = {name: {**slack("https://hooks.slack.com"), **extra} for name, extra in tables.items()}
    with pytest.raises(ConfigError) as info:
        parse_config({"notifiers": raw}, env={})
    assert any(p.startswith(problem) for p in info.value.problems), info.value.problems


def test_sigterm_stops_serve_promptly_while_a_receiver_trickles(tmp_path: Path) -> None:
    with Trickling(every=0.05) as trickle, Receiver(answer=pagerduty_answer) as pd:
        config = tmp_path / "hookwatch.toml"
        config.write_text(
            f'[notifiers.team]\ntype = "slack"\nwebhook_url = "{trickle.url}{SLACK_PATH}"\n'
            f'timeout = 60\n'
            f'[notifiers.oncall]\ntype = "pagerduty"\nrouting_key = "{ROUTING_KEY}"\n'
            f'events_url = "{pd.url}/v2/enqueue"\n')
        url = f"sqlite:///{tmp_path}/hookwatch.db"
        serve = Serve(tmp_path, {"HOOKWATCH_DATABASE_URL": url, "HOOKWATCH_WEBHOOK_SECRETS":
                                 SECRET, "HOOKWATCH_DELIVER_INTERVAL": "0.2"},
                      "--config", str(config)).start()
        try:
            engine = make_engine(url)
            for name in ("team", "oncall"):
                enqueue(engine, alert(), notifier=name, now=time.time())
            engine.dispose()
            # The healthy channel is told while the other one trickles.
            assert trickle.connected.wait(20), serve.log_text()
            assert wait_for(lambda: len(pd.requests) == 1, 20), serve.log_text()
            assert serve.proc is not None
            started = time.monotonic()
            os.killpg(serve.proc.pid, signal.SIGTERM)
            serve.proc.wait(timeout=30)
            took = time.monotonic() - started
        finally:
            serve.stop()
        # Not the 60 s the whole-exchange deadline would allow: the send was aborted.
        assert took < 15, (took, serve.log_text())
