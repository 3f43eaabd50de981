"""Discord through httpx against a local server that answers as the execute-webhook API does."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
from sqlalchemy import Engine
from sqlmodel import Session, col, select

from hookwatch.notifiers.base import Notifier, NotifyError, SendContext
from hookwatch.notifiers.discord import build_body
from hookwatch.notifiers.limits import units
from hookwatch.notifiers.registry import build
from hookwatch.storage.tables import Notification
from tests.conftest import ManualClock
from tests.notifiers.helpers import (
    DISCORD_PATH,
    Receiver,
    alert,
    config_problems,
    discord_answer,
    enqueue,
    huge_alert,
    make_worker,
    notifier_configs,
)

NOW = 1_795_000_100.0
TOKEN = DISCORD_PATH.rsplit("/", 1)[1]


@pytest.fixture
def discord() -> Iterator[Receiver]:
    with Receiver(answer=discord_answer) as server:
        yield server


def options(server: Receiver, **extra: Any) -> dict[str, Any]:
    return {"type": "discord", "webhook_url": server.url + DISCORD_PATH, **extra}


def notifier(server: Receiver, **extra: Any) -> Notifier:
    return build(notifier_configs({"chat": options(server, **extra)})["chat"])


def assert_within_limits(body: dict[str, Any]) -> None:
    """Every limit Discord documents for a message with embeds
    (https://discord.com/developers/docs/resources/message#embed-object-embed-limits)."""
    assert units(body.get("content", "")) <= 2000
    assert 1 <= len(body["embeds"]) <= 10
    total = 0
    for embed in body["embeds"]:
        assert 0 < units(embed["title"]) <= 256
        assert units(embed.get("description", "")) <= 4096
        assert len(embed.get("fields", [])) <= 25
        assert units(embed["footer"]["text"]) <= 2048
        total += units(embed["title"]) + units(embed.get("description", ""))
        total += units(embed["footer"]["text"])
        for field in embed.get("fields", []):
            assert 0 < units(field["name"]) <= 256
            assert 0 < units(field["value"]) <= 1024
            assert isinstance(field["inline"], bool)
            total += units(field["name"]) + units(field["value"])
        assert isinstance(embed["color"], int) and 0 <= embed["color"] <= 0xFFFFFF
    assert total <= 6000


def test_trigger_is_one_embed_posted_with_wait_true(discord: Receiver,
                                                    caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    caplog.set_level(logging.INFO, logger="httpx")  # `hookwatch` commands quieten it
    result = notifier(discord).send(alert(), SendContext(now=NOW, notification_id=1))
    (request,) = discord.requests
    assert request.method == "POST"
    assert urlsplit(request.path).path == DISCORD_PATH
    assert parse_qs(urlsplit(request.path).query) == {"wait": ["true"]}
    body = request.json()
    assert_within_limits(body)
    assert body["allowed_mentions"] == {"parse": []}
    assert body["content"] == "🔴 **FIRING** · critical · deployment acme/sdxl: deployment-error-rate"
    (embed,) = body["embeds"]
    assert embed["title"].startswith("[FIRING · critical] deployment acme/sdxl: error rate 35.0%")
    assert embed["url"] == "https://hooks.example.com/alerts/7"
    assert embed["color"] == 0xCF222E
    assert embed["timestamp"] == "2026-11-18T11:07:40.000Z"
    assert "**Measured:** error rate 35.0% (threshold 20.0%) over 10m" in embed["description"]
    assert "<t:1795000000:f>" in embed["description"]
    names = [f["name"] for f in embed["fields"]]
    assert names == ["Severity", "Scope", "Rule", "30\u00d7 · a1b2c3d4e5f6", "12\u00d7 · 0f0e0d0c0b0a"]
    # in a code block, nothing needs escaping (and backticks cannot end it)
    assert embed["fields"][4]["value"] == "```\nValueError: <prompt> & 'seed' must be set\n```"
    assert result is not None and result.external_ref == str(900_000_000_000_000_000
                                                             + len(request.body))
    # httpx logs the request URL; the token never reaches a record
    assert any(r.name == "httpx" for r in caplog.records)
    assert TOKEN not in caplog.text


def test_markdown_and_mentions_in_values_stay_text() -> None:
    body = build_body(alert(scope_name="acme/*bold*_x", summary="@everyone look: [x](http://e)"))
    (embed,) = body["embeds"]
    assert embed["description"].startswith("@everyone look: \\[x\\](http://e)")
    assert embed["fields"][1]["value"] == "deployment acme/\\*bold\\*\\_x"
    assert body["allowed_mentions"] == {"parse": []}  # so "@everyone" pings nobody


def test_huge_message_fits_every_limit() -> None:
    message = huge_alert()
    body = build_body(message)
    assert_within_limits(body)
    (embed,) = body["embeds"]
    assert len(embed["fields"]) <= 25
    errors = embed["fields"][3:]
    assert errors[-1]["name"] == "…"
    shown = len(errors) - 1
    assert errors[-1]["value"] == f"and {200 - shown} more errors (see hookwatch)"
    assert units(errors[0]["value"]) <= 1024
    # Without a value, the measure is the whole summary: the description is cut, its link kept.
    (embed,) = build_body(huge_alert(value=None))["embeds"]
    assert 4000 < units(embed["description"]) <= 4096
    assert embed["description"].endswith("…\n\n[Open in hookwatch](https://hooks.example.com/alerts/7)")
    assert len(embed["fields"]) > 3
    for kind in ("resolve", "acknowledge", "reminder", "test"):
        assert_within_limits(build_body(huge_alert(kind, resolved_at=NOW,
                                                   acknowledged_by="x" * 5000)))


def test_a_huge_message_is_accepted_by_the_receiver(discord: Receiver) -> None:
    notifier(discord).send(huge_alert(), SendContext(now=NOW))
    assert_within_limits(discord.requests[0].json())


def test_resolution_edits_the_trigger_message(discord: Receiver) -> None:
    sender = notifier(discord)
    trigger = sender.send(alert(), SendContext(now=NOW, notification_id=1))
    assert trigger is not None and trigger.external_ref
    resolved = sender.send(alert("resolve", resolved_at=NOW),
                           SendContext(now=NOW, notification_id=2, thread_ref=trigger.external_ref))
    edit = discord.requests[1]
    assert edit.method == "PATCH"
    assert edit.path == f"{DISCORD_PATH}/messages/{trigger.external_ref}"
    (embed,) = edit.json()["embeds"]
    assert embed["title"].startswith("[RESOLVED] deployment acme/sdxl")
    assert embed["color"] == 0x1A7F37
    assert [f["name"] for f in embed["fields"]] == ["Severity", "Scope", "Rule"]
    assert resolved is not None and resolved.external_ref == trigger.external_ref


def test_a_thread_id_in_the_url_comes_along_to_the_edit(discord: Receiver) -> None:
    sender = build(notifier_configs({"chat": {
        "type": "discord", "webhook_url": f"{discord.url}{DISCORD_PATH}?thread_id=777"}})["chat"])
    sender.send(alert(), SendContext(now=NOW))
    sender.send(alert("resolve"), SendContext(now=NOW, thread_ref="901"))
    post, edit = discord.requests
    assert parse_qs(urlsplit(post.path).query) == {"thread_id": ["777"], "wait": ["true"]}
    assert edit.path == f"{DISCORD_PATH}/messages/901?thread_id=777"


def test_resolution_follows_when_the_trigger_message_is_gone(discord: Receiver) -> None:
    discord.fail(1, 404, {"content-type": "application/json"},
                 b'{"message": "Unknown Message", "code": 10008}')
    notifier(discord).send(alert("resolve"), SendContext(now=NOW, thread_ref="901"))
    edit, follow = discord.requests
    assert edit.method == "PATCH" and follow.method == "POST"
    assert "wait=true" in follow.path


def test_resolution_posts_without_a_trigger_ref_or_when_edits_are_off(discord: Receiver) -> None:
    notifier(discord).send(alert("resolve"), SendContext(now=NOW))
    notifier(discord, edit_on_resolve=False).send(alert("resolve"),
                                                  SendContext(now=NOW, thread_ref="901"))
    assert [r.method for r in discord.requests] == ["POST", "POST"]


def test_429_retry_after_from_the_body_and_5xx_are_temporary(discord: Receiver) -> None:
    sender = notifier(discord)
    discord.fail(1, 429, {"content-type": "application/json", "Retry-After": "3"},
                 b'{"message": "You are being rate limited.", "retry_after": 2.5, "global": false}')
    discord.fail(1, 429, {"Retry-After": "40"}, b"<html>cloudflare</html>")
    discord.fail(1, 502, body=b"bad gateway")
    for retry_after, status in ((2.5, 429), (40, 429), (None, 502)):
        with pytest.raises(NotifyError) as info:
            sender.send(alert(), SendContext(now=NOW))
        assert (info.value.retryable, info.value.retry_after, info.value.http_status) == (
            True, retry_after, status)


@pytest.mark.parametrize(("status", "body"), [
    (400, b'{"message": "Invalid Form Body", "code": 50035}'),
    (401, b'{"message": "Invalid Webhook Token", "code": 50027}'),
    (404, b'{"message": "Unknown Webhook", "code": 10015}'),
])
def test_client_errors_are_permanent(discord: Receiver, status: int, body: bytes) -> None:
    discord.fail(1, status, {"content-type": "application/json"}, body)
    with pytest.raises(NotifyError) as info:
        notifier(discord).send(alert(), SendContext(now=NOW))
    assert info.value.retryable is False and info.value.http_status == status
    assert info.value.detail.startswith(f"Discord answered HTTP {status}: ")
    assert TOKEN not in info.value.detail


def test_config_problems_never_quote_the_url() -> None:
    problems = config_problems({
        "a": {"type": "discord", "webhook_url": f"https://example.com/x/{TOKEN}"},
        "b": {"type": "discord"},
        "c": {"type": "discord", "webhook_url": f"https://discord.com{DISCORD_PATH}",
              "username": "x" * 81, "edit_on_resolve": "yes"},
    })
    assert len(problems) == 4
    missing = [p for p in problems if p.startswith("notifiers.b.webhook_url: is required")]
    assert sorted(set(problems) - set(missing)) == [
        "notifiers.a.webhook_url: must be a Discord webhook URL "
        "(https://discord.com/api/webhooks/ID/TOKEN)",
        "notifiers.c.edit_on_resolve: must be true or false",
        "notifiers.c.username: must be at most 80 characters",
    ]
    assert not any(TOKEN in p for p in problems)


def test_through_the_worker_trigger_then_the_edit_after_a_429(
    sqlite_engine: Engine, discord: Receiver, clock: ManualClock
) -> None:
    worker = make_worker(sqlite_engine, notifier_configs({"chat": options(discord)}))
    enqueue(sqlite_engine, alert(), notifier="chat", now=clock.now)
    discord.fail(1, 429, {"content-type": "application/json"},
                 b'{"message": "You are being rate limited.", "retry_after": 42.5, "global": false}')
    worker.deliver(clock.now)
    with Session(sqlite_engine) as session:
        (row,) = session.exec(select(Notification))
        assert row.state == "pending" and row.due_at == clock.now + 42.5  # above the 10 s backoff
    clock.advance(42.5)
    worker.deliver(clock.now)
    enqueue(sqlite_engine, alert("resolve", resolved_at=clock.now), notifier="chat",
            now=clock.now)
    clock.advance(2)
    worker.deliver(clock.now)
    with Session(sqlite_engine) as session:
        trigger, resolve = session.exec(select(Notification).order_by(col(Notification.id)))
    assert (trigger.state, resolve.state) == ("sent", "sent")
    assert [r.method for r in discord.requests] == ["POST", "POST", "PATCH"]
    assert discord.requests[2].path == f"{DISCORD_PATH}/messages/{trigger.external_ref}"
