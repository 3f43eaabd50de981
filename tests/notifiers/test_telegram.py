"""Telegram through httpx against a local server that answers as the Bot API does."""

from __future__ import annotations

import logging
import re
from collections.abc import Iterator
from html.parser import HTMLParser
from typing import Any

import pytest
from sqlalchemy import Engine
from sqlmodel import Session, col, select

from hookwatch.notifiers.base import Notifier, NotifyError, SendContext
from hookwatch.notifiers.limits import units
from hookwatch.notifiers.registry import build
from hookwatch.notifiers.telegram import build_text
from hookwatch.storage.tables import Notification
from tests.conftest import ManualClock
from tests.notifiers.helpers import (
    TELEGRAM_TOKEN,
    Receiver,
    alert,
    config_problems,
    enqueue,
    huge_alert,
    make_worker,
    notifier_configs,
    telegram_answer,
)

NOW = 1_795_000_100.0
CHAT = "-1001234567890"
# https://core.telegram.org/bots/api#html-style: the tags we may use, and nothing else.
ALLOWED_TAGS = {"b", "i", "code", "a"}


@pytest.fixture
def api() -> Iterator[Receiver]:
    with Receiver(answer=telegram_answer) as server:
        yield server


def options(server: Receiver, **extra: Any) -> dict[str, Any]:
    return {"type": "telegram", "bot_token": TELEGRAM_TOKEN, "chat_id": CHAT,
            "api_url": server.url, **extra}


def notifier(server: Receiver, **extra: Any) -> Notifier:
    return build(notifier_configs({"tg": options(server, **extra)})["tg"])


class TagChecker(HTMLParser):
    """Telegram refuses unbalanced or unknown tags ("can't parse entities"); so do we."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.stack: list[str] = []
        self.text: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        assert tag in ALLOWED_TAGS, tag
        assert all(name == "href" for name, _ in attrs) and (tag == "a") == bool(attrs)
        self.stack.append(tag)

    def handle_endtag(self, tag: str) -> None:
        assert self.stack and self.stack.pop() == tag

    def handle_data(self, data: str) -> None:
        self.text.append(data)


def parsed(html: str) -> str:
    # Telegram knows only &lt; &gt; &amp; &quot; and numeric entities.
    for entity in re.findall(r"&([#A-Za-z0-9]+);", html):
        assert entity in ("lt", "gt", "amp", "quot") or entity.startswith("#"), entity
    checker = TagChecker()
    checker.feed(html)
    checker.close()
    assert checker.stack == []
    return "".join(checker.text)


def test_trigger_is_escaped_html_sent_to_sendmessage(api: Receiver,
                                                     caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    caplog.set_level(logging.INFO, logger="httpx")  # `hookwatch` commands quieten it
    result = notifier(api).send(alert(), SendContext(now=NOW, notification_id=1))
    (request,) = api.requests
    assert request.path == f"/bot{TELEGRAM_TOKEN}/sendMessage"
    assert request.headers["content-type"] == "application/json"
    body = request.json()
    assert set(body) == {"chat_id", "text", "parse_mode", "link_preview_options"}
    assert body["chat_id"] == CHAT and body["parse_mode"] == "HTML"
    assert body["link_preview_options"] == {"is_disabled": True}
    text = body["text"]
    assert text.startswith("🔴 <b>[FIRING · critical] deployment acme/sdxl: error rate 35.0%")
    assert "<code>ValueError: &lt;prompt&gt; &amp; &#39;seed&#39; must be set</code>" in text
    assert '<a href="https://hooks.example.com/alerts/7">Open in hookwatch</a>' in text
    shown = parsed(text)
    assert "ValueError: <prompt> & 'seed' must be set" in shown
    assert result is not None and result.external_ref == str(4000 + len(request.body) % 1000)
    # httpx logs the request URL, which holds the token; the record does not
    assert any(r.name == "httpx" for r in caplog.records)
    assert TELEGRAM_TOKEN not in caplog.text and TELEGRAM_TOKEN.split(":")[1] not in caplog.text


def test_huge_message_stays_within_4096_and_valid_html() -> None:
    for kind in ("trigger", "resolve", "acknowledge", "reminder", "test"):
        text = build_text(huge_alert(kind, acknowledged_by="<x>" * 3000,
                                     acknowledge_comment="&" * 9000))
        assert units(text) <= 4096
        parsed(text)
    text = build_text(huge_alert())
    assert "<i>… and " in text and " more</i>" in text
    assert text.count("• ") >= 5  # as many errors as fit, not none


def test_nothing_is_cut_inside_a_tag_or_entity_even_past_every_template_limit() -> None:
    # A rule name is not shortened by the template; the fallback still fits and parses.
    text = build_text(huge_alert(rule="&<rule>" * 2000, scope_name="é" * 9000))
    assert units(text) <= 4096
    assert text.startswith("<b>[FIRING · critical] deployment éé")  # the short fallback
    assert "acme/sdxl &lt;failed&gt; &amp; *more*" in text
    parsed(text)


def test_resolution_replies_to_the_trigger(api: Receiver) -> None:
    sender = notifier(api)
    trigger = sender.send(alert(), SendContext(now=NOW))
    assert trigger is not None and trigger.external_ref
    sender.send(alert("resolve", resolved_at=NOW),
                SendContext(now=NOW, thread_ref=trigger.external_ref))
    reply = api.requests[1].json()
    message_id = int(trigger.external_ref)
    assert reply["reply_parameters"] == {"message_id": message_id,
                                         "allow_sending_without_reply": True}
    assert reply["reply_to_message_id"] == message_id
    assert reply["text"].startswith("✅ <b>[RESOLVED] deployment acme/sdxl")
    assert "Top errors" not in reply["text"]
    assert "reply_parameters" not in api.requests[0].json()


def test_forum_topic_and_numeric_chat_id(api: Receiver) -> None:
    sender = build(notifier_configs({"tg": {**options(api), "chat_id": -1001234567890,
                                            "message_thread_id": 42}})["tg"])
    sender.send(alert(), SendContext(now=NOW))
    body = api.requests[0].json()
    assert (body["chat_id"], body["message_thread_id"]) == (CHAT, 42)


def test_429_retry_after_and_5xx_are_temporary(api: Receiver) -> None:
    sender = notifier(api)
    api.fail(1, 429, {"content-type": "application/json"},
             b'{"ok": false, "error_code": 429, "description": "Too Many Requests: retry after 17",'
             b' "parameters": {"retry_after": 17}}')
    api.fail(1, 502, body=b"<html>Bad Gateway</html>")
    with pytest.raises(NotifyError) as info:
        sender.send(alert(), SendContext(now=NOW))
    assert (info.value.retryable, info.value.retry_after, info.value.http_status) == (
        True, 17, 429)
    assert info.value.detail == "Telegram answered HTTP 429: Too Many Requests: retry after 17"
    with pytest.raises(NotifyError) as info:
        sender.send(alert(), SendContext(now=NOW))
    assert info.value.retryable and info.value.http_status == 502


@pytest.mark.parametrize(("status", "description"), [
    (400, "Bad Request: chat not found"),
    (401, "Unauthorized"),
    (403, "Forbidden: bot was kicked from the supergroup chat"),
])
def test_client_errors_are_permanent(api: Receiver, status: int, description: str) -> None:
    api.fail(1, status, {"content-type": "application/json"},
             f'{{"ok": false, "error_code": {status}, "description": "{description}"}}'.encode())
    with pytest.raises(NotifyError) as info:
        notifier(api).send(alert(), SendContext(now=NOW))
    assert info.value.retryable is False and info.value.http_status == status
    assert info.value.detail == f"Telegram answered HTTP {status}: {description}"


def test_a_group_upgraded_to_a_supergroup_says_the_new_chat_id(api: Receiver) -> None:
    api.fail(1, 400, {"content-type": "application/json"},
             b'{"ok": false, "error_code": 400, "description": "Bad Request: group chat was '
             b'upgraded to a supergroup chat", "parameters": {"migrate_to_chat_id": -100987}}')
    with pytest.raises(NotifyError) as info:
        notifier(api).send(alert(), SendContext(now=NOW))
    assert not info.value.retryable
    assert info.value.detail == 'Telegram: the chat moved; set chat_id = "-100987"'


def test_config_problems_never_quote_the_token() -> None:
    problems = config_problems({
        "a": {"type": "telegram", "bot_token": "not-a-token-at-all", "chat_id": "me"},
        "b": {"type": "telegram", "bot_token": TELEGRAM_TOKEN},
        "c": {"type": "telegram", "bot_token": TELEGRAM_TOKEN, "chat_id": "@acme_oncall",
              "api_url": "ftp://x"},
    })
    assert problems == [
        "notifiers.a.bot_token: must be a bot token from @BotFather (digits, ':', then the "
        "secret part)",
        "notifiers.a.chat_id: must be a chat id (e.g. -1001234567890) or @channelname",
        "notifiers.b.chat_id: is required",
        "notifiers.c.api_url: must be an http:// or https:// URL with a host",
    ]
    assert not any(TELEGRAM_TOKEN in p for p in problems)


def test_through_the_worker_trigger_then_a_reply_after_a_5xx(
    sqlite_engine: Engine, api: Receiver, clock: ManualClock
) -> None:
    worker = make_worker(sqlite_engine, notifier_configs({"tg": options(api)}))
    enqueue(sqlite_engine, alert(), notifier="tg", now=clock.now)
    api.fail(1, 500, body=b"Internal Server Error")
    worker.deliver(clock.now)
    clock.advance(60)
    worker.deliver(clock.now)
    enqueue(sqlite_engine, alert("resolve", resolved_at=clock.now), notifier="tg", now=clock.now)
    clock.advance(5)
    worker.deliver(clock.now)
    with Session(sqlite_engine) as session:
        trigger, resolve = session.exec(select(Notification).order_by(col(Notification.id)))
    assert (trigger.state, trigger.attempts, resolve.state) == ("sent", 2, "sent")
    assert trigger.external_ref is not None
    reply = api.requests[2].json()
    assert reply["reply_parameters"]["message_id"] == int(trigger.external_ref)
