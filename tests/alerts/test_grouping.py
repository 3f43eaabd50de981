"""Grouping through the real app and real local receivers (Slack Web API, PagerDuty, SMTP):
a storm of 100 failing models, a restart mid-group on SQLite, a leader failover mid-group on
PostgreSQL."""

from __future__ import annotations

import email
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from email.message import Message
from pathlib import Path

import pytest
from aiosmtpd.controller import Controller
from fastapi import FastAPI
from fastapi.testclient import TestClient

from hookwatch.app import create_app
from hookwatch.config import Config, load_config
from tests.alerts.helpers import outcomes
from tests.conftest import ManualClock, make_settings, until
from tests.notifiers.helpers import (
    ROUTING_KEY,
    SLACK_TOKEN,
    Receiver,
    SmtpRecorder,
    pagerduty_answer,
    slack_api_answer,
    smtp_controller,
)

MODELS = 100


@dataclass
class Channels:
    slack: Receiver
    pagerduty: Receiver
    mail: SmtpRecorder
    smtp: Controller

    def config(self, tmp_path: Path, rules: str = "") -> Config:
        path = tmp_path / "hookwatch.toml"
        path.write_text(f"""
[notifiers.team]
type = "slack"
token = "{SLACK_TOKEN}"
channel = "C0TEST"
api_url = "{self.slack.url}/api/"

[notifiers.oncall]
type = "pagerduty"
routing_key = "{ROUTING_KEY}"
events_url = "{self.pagerduty.url}/v2/enqueue"

[notifiers.mail]
type = "email"
smtp_host = "127.0.0.1"
smtp_port = {self.smtp.port}
from = "hookwatch@example.com"
to = ["oncall@example.com"]
{rules}""")
        return load_config(path)

    def posts(self) -> list[dict[str, object]]:
        return [r.json() for r in self.slack.requests if r.path.endswith("chat.postMessage")]

    def updates(self) -> list[dict[str, object]]:
        return [r.json() for r in self.slack.requests if r.path.endswith("chat.update")]

    def pages(self) -> list[dict[str, object]]:
        return [r.json() for r in self.pagerduty.requests]

    def mails(self) -> list[Message]:
        return [email.message_from_bytes(m.original_content) for m in self.mail.messages]

    def counts(self) -> tuple[int, int, int]:
        return len(self.posts()), len(self.pages()), len(self.mails())


@pytest.fixture
def channels() -> Iterator[Channels]:
    recorder = SmtpRecorder()
    smtp = smtp_controller(recorder)
    with Receiver(answer=slack_api_answer) as slack, Receiver(answer=pagerduty_answer) as pd:
        yield Channels(slack, pd, recorder, smtp)
    smtp.stop()


def step(client: TestClient) -> None:
    """What the scheduler does on the leader: evaluate, then deliver (waiting for the sends)."""
    client.app.state.jobs.run_now("evaluate")  # type: ignore[attr-defined]
    client.app.state.jobs.run_now("deliver")  # type: ignore[attr-defined]


def fail(client: TestClient, clock: ManualClock, model: str) -> None:
    engine = client.app.state.runtime.engine  # type: ignore[attr-defined]
    outcomes(engine, clock, failed=20, model=model, deployment=None, version=None)


def recover(client: TestClient, clock: ManualClock, models: list[str]) -> None:
    engine = client.app.state.runtime.engine  # type: ignore[attr-defined]
    for model in models:
        outcomes(engine, clock, succeeded=200, model=model, deployment=None, version=None)


def run_for(client: TestClient, clock: ManualClock, seconds: float, every: float = 10) -> None:
    end = clock.now + seconds
    while clock.now < end:
        clock.advance(every)
        step(client)


def test_a_storm_of_100_models_pages_a_handful_of_times(
        channels: Channels, tmp_path: Path, app_factory: Callable[..., FastAPI],
        clock: ManualClock) -> None:
    """No [[rules]] and no group_by: the built-in rules and the built-in grouping."""
    models = [f"acme/model-{i:03d}" for i in range(MODELS)]
    with TestClient(app_factory(config=channels.config(tmp_path))) as client:
        fail(client, clock, models[0])
        step(client)
        # The first crossing pages at once: no group_wait.
        assert channels.counts() == (1, 1, 1)
        first = channels.pages()[0]
        assert first["event_action"] == "trigger"
        for model in models[1:]:  # the other 99 within 20 s
            clock.advance(0.2)
            fail(client, clock, model)
            step(client)
        assert channels.counts() == (1, 1, 1)  # folded, waiting for the group's next slot
        run_for(client, clock, 600)
        recover(client, clock, models)
        run_for(client, clock, 900)

    posts, pages, mails = channels.posts(), channels.pages(), channels.mails()
    # Per channel: the first page, one update naming all 100, one resolution.
    assert channels.counts() == (3, 3, 3)
    assert len(channels.posts()) <= 5 and len(pages) <= 5 and len(mails) <= 5
    # PagerDuty: one incident for the group, resolved when its last alert resolved.
    assert {p["dedup_key"] for p in pages} == {first["dedup_key"]}
    assert [p["event_action"] for p in pages] == ["trigger", "trigger", "resolve"]
    summary = pages[1]["payload"]["summary"]  # type: ignore[index]
    assert "100 alerts (100 firing) · rule=model-error-rate" in summary
    # Slack: one parent; the update and the resolution in its thread; the parent updated.
    parent_ts = f"1795000000.{len(channels.slack.requests[0].body):06d}"
    assert "thread_ts" not in posts[0]
    assert [p.get("thread_ts") for p in posts[1:]] == [parent_ts, parent_ts]
    assert [u["ts"] for u in channels.updates()] == [parent_ts, parent_ts]
    text = str(posts[1]["blocks"])
    assert "100 alerts" in text and "acme/model-000" in text and "and 90 more" in text
    # Email: one message listing the group's alerts, the later ones replying to it.
    first_id = mails[0]["Message-ID"]
    assert [m["In-Reply-To"] for m in mails[1:]] == [first_id, first_id]
    assert len({m["Subject"].removeprefix("Re: ") for m in mails}) == 1
    body = mails[1].get_payload(0).get_payload(decode=True).decode()  # type: ignore[union-attr]
    assert "100 alerts in this group (rule=model-error-rate): 100 firing, 0 resolved" in body
    assert "and 90 more" in body
    assert "100 alerts in this group (rule=model-error-rate): 0 firing, 100 resolved" in (
        mails[2].get_payload(0).get_payload(decode=True).decode())  # type: ignore[union-attr]


def test_every_alert_alone_when_asked(channels: Channels, tmp_path: Path,
                                      app_factory: Callable[..., FastAPI],
                                      clock: ManualClock) -> None:
    rules = """
[[rules]]
name = "each"
kind = "error_rate"
scope = "model"
notify = ["oncall"]
group_by = ["rule", "scope", "name"]
group_interval = "1m"
"""
    with TestClient(app_factory(config=channels.config(tmp_path, rules))) as client:
        for i in range(3):
            fail(client, clock, f"acme/m{i}")
        step(client)
    pages = channels.pages()
    assert len(pages) == 3 and len({p["dedup_key"] for p in pages}) == 3


def test_a_restart_mid_group_sends_nothing_twice_and_loses_no_member(
        channels: Channels, tmp_path: Path, sqlite_url: str, clock: ManualClock) -> None:
    config = channels.config(tmp_path)
    settings = make_settings(sqlite_url)
    with TestClient(create_app(settings, clock=clock, config=config, run_jobs=False)) as one:
        fail(one, clock, "acme/a")
        step(one)
        clock.advance(5)
        fail(one, clock, "acme/b")
        step(one)  # folded into the update that waits for the slot
    assert channels.counts() == (1, 1, 1)
    with TestClient(create_app(settings, clock=clock, config=config, run_jobs=False)) as two:
        step(two)
        assert channels.counts() == (1, 1, 1)  # the first page is not sent again
        clock.advance(5)
        fail(two, clock, "acme/c")
        step(two)
        run_for(two, clock, 300)
    pages = channels.pages()
    assert [p["event_action"] for p in pages] == ["trigger", "trigger"]
    assert len({p["dedup_key"] for p in pages}) == 1
    assert "3 alerts (3 firing)" in pages[1]["payload"]["summary"]  # type: ignore[index]
    assert channels.counts() == (2, 2, 2)


def test_a_leader_failover_mid_group_on_postgres(
        channels: Channels, tmp_path: Path, postgres_url: str, clock: ManualClock) -> None:
    config = channels.config(tmp_path)
    apps = [create_app(make_settings(postgres_url), clock=clock, config=config, run_jobs=False)
            for _ in range(2)]
    leader = TestClient(apps[0]).__enter__()  # started first, so it leads
    try:
        with TestClient(apps[1]) as follower:
            runtime = follower.app.state.runtime  # type: ignore[attr-defined]
            fail(leader, clock, "acme/a")
            step(leader)
            step(follower)  # a follower runs no leader job
            clock.advance(5)
            fail(leader, clock, "acme/b")
            step(leader)
            assert channels.counts() == (1, 1, 1)
            leader.__exit__(None, None, None)
            until(lambda: runtime.leader.is_leader, timeout=10)
            step(follower)
            assert channels.counts() == (1, 1, 1)
            clock.advance(5)
            fail(follower, clock, "acme/c")
            run_for(follower, clock, 300)
    finally:
        leader.__exit__(None, None, None)
    pages = channels.pages()
    assert [p["event_action"] for p in pages] == ["trigger", "trigger"]
    assert len({p["dedup_key"] for p in pages}) == 1
    assert "3 alerts (3 firing)" in pages[1]["payload"]["summary"]  # type: ignore[index]
    assert channels.counts() == (2, 2, 2)
