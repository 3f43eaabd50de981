"""Injection: hostile model names, error texts and logs stay inert everywhere they are shown.

A sender controls a prediction's model, deployment, error and logs. Here they carry HTML and
script, Slack mentions and links, e-mail header breaks and template syntax; the alert they
trigger goes to Slack, PagerDuty, e-mail and a webhook (local receivers), and every page, part,
badge and message is checked: markup escaped, no header injected, no mention or link live.
"""

from __future__ import annotations

import email
import email.policy
import json
import xml.etree.ElementTree as ET
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from html.parser import HTMLParser
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from hookwatch.config import load_config
from tests.conftest import ManualClock, signed_headers
from tests.notifiers.helpers import Receiver, SmtpRecorder, pagerduty_answer, smtp_controller

MODEL = "acme/<!here><img src=x onerror=alert(1)>"  # a Slack mention, and HTML
DEPLOYMENT = 'acme/"><svg onload=alert(2)>'
ERROR = ("<script>alert(3)</script> <!channel> <@U012AB3CD> <https://evil.example/|click me> "
         "*bold* `code` &amp; {{7*7}} ${7*7} ]]>\r\nBcc: victim@evil.example\r\n\r\nbody")
LOGS = "<iframe src=javascript:alert(4)></iframe>\n" + ERROR
LIVE_MARKUP = ("<img src=x onerror", "<svg onload", "<script>alert", "<iframe src=javascript")
# https://api.slack.com/reference/surfaces/formatting#escaping: &, < and > must be escaped.
SLACK_LIVE = ("<!here>", "<!channel>", "<@U012AB3CD>", "<https://evil.example/|click me>")


@dataclass
class Markup(HTMLParser):
    """Every element and attribute of a page, and the text inside script elements."""

    tags: list[tuple[str, dict[str, str]]] = field(default_factory=list)
    scripts: list[str] = field(default_factory=list)
    _in_script: bool = False

    def __post_init__(self) -> None:
        super().__init__(convert_charrefs=True)

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append((tag, {k: v or "" for k, v in attrs}))
        self._in_script = tag == "script"

    def handle_endtag(self, tag: str) -> None:
        self._in_script = False

    def handle_data(self, data: str) -> None:
        if self._in_script:
            self.scripts.append(data)


def assert_inert_html(html: str, where: str) -> None:
    page = Markup()
    page.feed(html)
    for tag, attrs in page.tags:
        for name, value in attrs.items():
            assert not (name.startswith("on") and "alert(" in value), (where, tag, name, value)
            assert not value.strip().lower().startswith("javascript:"), (where, tag, name)
        assert tag not in ("iframe",), (where, tag)
    assert not [s for s in page.scripts if "alert(" in s], where
    for live in LIVE_MARKUP:
        assert live not in html, (where, live)


def strings(value: Any) -> Iterator[str]:
    if isinstance(value, str):
        yield value
    elif isinstance(value, dict):
        for k, v in value.items():
            yield from strings(k)
            yield from strings(v)
    elif isinstance(value, list):
        for v in value:
            yield from strings(v)


@pytest.fixture
def fired(
    app_factory: Callable[..., FastAPI], clock: ManualClock, tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> Iterator[tuple[TestClient, Receiver, Receiver, Receiver, SmtpRecorder]]:
    """An app whose alert on the hostile model has fired and been delivered everywhere."""
    mail = SmtpRecorder()
    smtp = smtp_controller(mail)
    monkeypatch.setenv("HOOK_SECRET", "whsec_" + "c2VjcmV0LWZvci1pbmplY3Rpb24tdGVzdHM=")
    try:
        with Receiver() as slack, Receiver(answer=pagerduty_answer) as pagerduty, \
                Receiver() as hook:
            path = tmp_path / "hookwatch.toml"
            path.write_text(f"""
[server]
public_url = "https://hookwatch.example.com"

[notifiers.team]
type = "slack"
webhook_url = "{slack.url}/services/T0/B0/x"

[notifiers.oncall]
type = "pagerduty"
routing_key = "R0ut1ngK3y0f32CharactersForTest1"
events_url = "{pagerduty.url}/v2/enqueue"

[notifiers.mail]
type = "email"
smtp_host = "127.0.0.1"
smtp_port = {smtp.port}
from = "hookwatch@example.com"
to = ["oncall@example.com"]

[notifiers.hook]
type = "webhook"
url = "{hook.url}/alerts"
secret = "${{HOOK_SECRET}}"

[[rules]]
name = "hostile-errors"
kind = "error_rate"
scope = "model"
window = "10m"
threshold = 0.2
min_predictions = 5
severity = "critical"
notify = ["team", "oncall", "mail", "hook"]
""")
            with TestClient(app_factory(config=load_config(path))) as client:
                for i in range(10):
                    status = "failed" if i % 2 else "succeeded"
                    body = json.dumps({
                        "id": f"hostile-{i}", "status": status, "model": MODEL,
                        "deployment": DEPLOYMENT, "version": "<b>v1</b>",
                        "error": ERROR if status == "failed" else None, "logs": LOGS,
                    }).encode()
                    answer = client.post("/hooks/replicate", content=body,
                                         headers=signed_headers(body, timestamp=clock.now))
                    assert answer.status_code == 200, answer.text
                jobs = client.app.state.jobs  # type: ignore[attr-defined]
                jobs.run_now("evaluate")
                jobs.run_now("deliver")
                yield client, slack, pagerduty, hook, mail
    finally:
        smtp.stop()


def test_dashboard_pages_and_parts_are_inert(fired: tuple[Any, ...]) -> None:
    client = fired[0]
    pages = ["/", "/parts/live", "/parts/scopes", "/predictions/hostile-1",
             "/predictions/hostile-0"]
    shown = False
    for page in pages:
        response = client.get(page)
        assert response.status_code == 200, page
        assert response.headers["content-type"].startswith("text/html")
        assert_inert_html(response.text, page)
        shown |= "&lt;img src=x onerror=alert(1)&gt;" in response.text
    assert shown, "the hostile model name must be shown, escaped, not dropped"


def test_api_answers_are_json_not_html(fired: tuple[Any, ...]) -> None:
    client = fired[0]
    for path in ("/api/predictions", "/api/predictions/hostile-1", "/api/status", "/api/alerts"):
        response = client.get(path)
        assert response.headers["content-type"].startswith("application/json"), path
    assert client.get("/api/predictions/hostile-1").json()["model"] == MODEL


@pytest.mark.parametrize(("scope", "name"), [("model", MODEL), ("deployment", DEPLOYMENT)])
def test_svg_badges_are_inert(fired: tuple[Any, ...], scope: str, name: str) -> None:
    client = fired[0]
    response = client.get(f"/badge/{scope}/{quote(name, safe='/')}.svg")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("image/svg+xml")
    root = ET.fromstring(response.content)  # well-formed: nothing broke out of a text node
    for element in root.iter():
        tag = element.tag.rsplit("}", 1)[-1]
        assert tag not in ("script", "foreignObject", "iframe", "image"), tag
        for attr, value in element.attrib.items():
            local = attr.rsplit("}", 1)[-1]
            assert not local.lower().startswith("on"), (tag, attr)
            assert "javascript:" not in value.lower(), (tag, attr)
    for live in LIVE_MARKUP:
        assert live not in response.text


def slack_parsed(value: Any) -> Iterator[str]:
    """The strings Slack parses for mentions and links: all but plain_text objects' text."""
    if isinstance(value, dict):
        if value.get("type") == "plain_text":
            return
        for v in value.values():
            yield from slack_parsed(v)
    elif isinstance(value, list):
        for v in value:
            yield from slack_parsed(v)
    elif isinstance(value, str):
        yield value


def test_slack_messages_mention_nobody_and_link_nowhere(fired: tuple[Any, ...]) -> None:
    slack = fired[1]
    assert slack.requests, "the alert must reach Slack"
    for request in slack.requests:
        for text in slack_parsed(request.json()):
            for live in SLACK_LIVE:
                assert live not in text, (live, text[:200])
            assert "<img" not in text and "<script" not in text


def test_pagerduty_fields_are_plain_and_bounded(fired: tuple[Any, ...]) -> None:
    pagerduty = fired[2]
    assert pagerduty.requests, "the alert must reach PagerDuty"
    for request in pagerduty.requests:
        event = request.json()
        assert len(event["payload"]["summary"]) <= 1024  # the Events v2 limit
        assert all(ch not in event["dedup_key"] for ch in "<>\"'\r\n")
        for link in event.get("links", []) + event.get("images", []):
            assert "evil.example" not in json.dumps(link)
            assert link.get("href", "https://").startswith(("https://", "http://"))
        assert "\r\n" not in event["payload"]["summary"]


def test_email_headers_are_not_injected_and_html_is_inert(fired: tuple[Any, ...]) -> None:
    mail: SmtpRecorder = fired[4]
    assert mail.messages, "the alert must reach the mailbox"
    for envelope in mail.messages:
        assert envelope.rcpt_tos == ["oncall@example.com"]
        message = email.message_from_bytes(envelope.original_content or b"",
                                           policy=email.policy.default)
        assert message["Bcc"] is None
        for name, value in message.items():
            assert "victim@evil.example" not in str(value), name
            assert "\n" not in str(value).strip() and "\r" not in str(value), name
        html = message.get_body(("html",))
        assert html is not None
        assert_inert_html(html.get_content(), "email html")


def test_generic_webhook_payload_is_json_with_the_text_as_data(fired: tuple[Any, ...]) -> None:
    hook = fired[3]
    assert hook.requests
    texts = list(strings(hook.requests[0].json()))
    assert any(MODEL in t for t in texts)  # carried as data, verbatim, inside JSON strings


def test_the_checks_catch_live_markup() -> None:
    """The control: each checker above fails on what it exists to catch."""
    for bad in ('<p><img src=x onerror="alert(1)"></p>', "<script>alert(1)</script>",
                '<a href="javascript:alert(1)">x</a>', "<iframe src=x></iframe>"):
        with pytest.raises(AssertionError):
            assert_inert_html(bad, "control")
    assert_inert_html("<p>&lt;img src=x onerror=alert(1)&gt;</p>", "control")
    parsed = list(slack_parsed({"text": "<!here>", "blocks": [
        {"type": "header", "text": {"type": "plain_text", "text": "<!channel>"}}]}))
    assert "<!here>" in parsed and "<!channel>" not in parsed


@pytest.mark.browser
def test_nothing_runs_in_a_real_browser(
    app_factory: Callable[..., FastAPI], clock: ManualClock
) -> None:
    """Chromium opens the pages, their live parts and the badges: no script of ours runs."""
    import httpx
    from playwright.sync_api import sync_playwright

    from tests.conftest import LiveServer

    app = app_factory()
    with LiveServer(app) as server, sync_playwright() as pw:
        for i in range(30):
            status = "failed" if i % 2 else "succeeded"
            body = json.dumps({"id": f"hostile-{i}", "status": status, "model": MODEL,
                               "deployment": DEPLOYMENT, "error": ERROR, "logs": LOGS}).encode()
            answer = httpx.post(server.url + "/hooks/replicate", content=body,
                                headers=signed_headers(body, timestamp=clock.now))
            assert answer.status_code == 200
        app.state.jobs.run_now("evaluate")  # the default rules fire on 50% errors
        browser = pw.chromium.launch(executable_path="/usr/bin/chromium", args=["--no-sandbox"])
        try:
            page = browser.new_page()
            dialogs: list[str] = []
            def dismiss(dialog: Any) -> None:
                dialogs.append(dialog.message)
                dialog.dismiss()

            page.on("dialog", dismiss)
            for path in ("/", "/predictions/hostile-1",
                         f"/badge/model/{quote(MODEL, safe='/')}.svg",
                         f"/badge/deployment/{quote(DEPLOYMENT, safe='/')}.svg"):
                page.goto(server.url + path, wait_until="networkidle")
                page.wait_for_timeout(300)  # htmx parts and any onerror handler
                live = page.evaluate(
                    "document.querySelectorAll('img[onerror], svg[onload], iframe').length")
                assert live == 0, (path, live)
            assert dialogs == []
            page.goto(server.url + "/")
            assert MODEL in page.inner_text("body")  # shown as text
        finally:
            browser.close()
