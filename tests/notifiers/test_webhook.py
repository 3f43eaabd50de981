"""The signed JSON webhook through httpx against a local server; hookwatch verifies its own."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from standardwebhooks import Webhook

from hookwatch.cli import main
from hookwatch.hooks.signature import Verifier
from hookwatch.notifiers.base import Notifier, NotifyError, SendContext
from hookwatch.notifiers.registry import build
from tests.notifiers.helpers import (
    HOOK_SECRET,
    Receiver,
    alert,
    config_problems,
    notifier_configs,
)

NOW = 1_795_000_100.0


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    with Receiver() as server:
        yield server


def notifier(server: Receiver, path: str = "/alerts?token=qu3ryT0ken") -> Notifier:
    return build(notifier_configs({"hook": {
        "type": "webhook", "url": server.url + path, "secret": HOOK_SECRET}})["hook"])


def test_signed_document_verifies_with_hookwatch_and_the_reference_library(
    receiver: Receiver,
) -> None:
    notifier(receiver).send(alert(), SendContext(now=NOW, notification_id=42))
    (request,) = receiver.requests
    assert request.path == "/alerts?token=qu3ryT0ken"
    assert request.headers["webhook-id"] == "msg_hookwatch_42"
    assert request.headers["webhook-timestamp"] == str(int(NOW))
    Verifier([HOOK_SECRET], None).verify(request.headers, request.body, NOW)
    document = request.json()
    assert document["type"] == "alert.trigger"
    assert document["timestamp"] == "2026-11-18T11:08:20.000Z"
    data = document["data"]
    assert data["status"] == "firing"
    assert data["alert_key"] == "deployment-error-rate:deployment:acme/sdxl"
    assert data["counts"]["failed"] == 42
    assert data["top_errors"][0]["fingerprint"] == "a1b2c3d4e5f6a7b8"
    assert data["title"].startswith("[FIRING · critical]")


def test_the_reference_library_accepts_it_too(receiver: Receiver) -> None:
    import time

    now = time.time()  # standardwebhooks compares the timestamp with the real clock
    notifier(receiver).send(alert("resolve", resolved_at=now), SendContext(now=now))
    (request,) = receiver.requests
    document = Webhook(HOOK_SECRET).verify(request.body, dict(request.headers))
    assert document["type"] == "alert.resolve"
    assert document["data"]["status"] == "resolved"


def test_a_retry_keeps_the_webhook_id(receiver: Receiver) -> None:
    receiver.fail(1, 503, {"Retry-After": "20"})
    sender = notifier(receiver)
    with pytest.raises(NotifyError) as info:
        sender.send(alert(), SendContext(now=NOW, notification_id=9))
    assert (info.value.retryable, info.value.retry_after) == (True, 20)
    sender.send(alert(), SendContext(now=NOW + 20, notification_id=9))
    first, second = receiver.requests
    assert first.headers["webhook-id"] == second.headers["webhook-id"] == "msg_hookwatch_9"
    assert first.headers["webhook-signature"] != second.headers["webhook-signature"]


@pytest.mark.parametrize(("status", "retryable"),
                         [(301, False), (400, False), (410, False), (408, True), (502, True)])
def test_status_codes(receiver: Receiver, status: int, retryable: bool) -> None:
    receiver.fail(1, status, {"location": "https://elsewhere.example.com/"})
    with pytest.raises(NotifyError) as info:
        notifier(receiver).send(alert(), SendContext(now=NOW))
    assert info.value.retryable is retryable
    assert info.value.http_status == status
    assert info.value.detail.startswith(f"127.0.0.1 answered HTTP {status}")
    assert "qu3ryT0ken" not in info.value.detail


# --- body_template: the receiver's own JSON shape, still signed ----------------------------

TEMPLATE = """{
  "text": {{ title|tojson }},
  "state": "{{ m.kind }}",
  "rate": {{ m.value }},
  "errors": [{% for e in m.top_errors %}{"n": {{ e.count }}, "what": {{ e.example|tojson }}}{% if not loop.last %}, {% endif %}{% endfor %}],
  "envelope": {{ document.type|tojson }}
}"""


def template_problems(template: object) -> list[str]:
    return config_problems({"hook": {"type": "webhook", "url": "https://hooks.example.com/in",
                                     "secret": HOOK_SECRET, "body_template": template}})


def test_body_template_shapes_the_signed_body(receiver: Receiver) -> None:
    sender = build(notifier_configs({"hook": {
        "type": "webhook", "url": receiver.url + "/in", "secret": HOOK_SECRET,
        "body_template": TEMPLATE}})["hook"])
    sender.send(alert(), SendContext(now=NOW, notification_id=5))
    (request,) = receiver.requests
    Verifier([HOOK_SECRET], None).verify(request.headers, request.body, NOW)
    assert request.headers["content-type"] == "application/json"
    assert request.json() == {
        "text": "[FIRING · critical] deployment acme/sdxl: error rate 35.0% (threshold 20.0%) "
                "over 10m",
        "state": "trigger",
        "rate": 0.35,
        "errors": [{"n": 30, "what": "CUDA out of memory. Tried to allocate 2.00 GiB"},
                   {"n": 12, "what": "ValueError: <prompt> & `seed` must be set"}],
        "envelope": "alert.trigger",
    }


@pytest.mark.parametrize(("template", "problem"), [
    ('{"text": {{ title }}}', "does not render valid JSON (line 1 column 11: "
                              "unexpected character, expected a JSON value) "
                              "(for a sample trigger message)"),
    ('{"a": {{ m.nope|tojson }}}', "does not render: 'hookwatch.notifiers.message.AlertMessage "
                                   "object' has no attribute 'nope' (for a sample trigger "
                                   "message)"),
    ("{% if %}", "is not a valid Jinja2 template: line 1: Expected an expression, got 'end of "
                 "statement block'"),
    ('{"k": 1{% if m.kind == "resolve" %},{% endif %}}',
     "does not render valid JSON (line 1 column 8: trailing comma is not allowed) (for a sample "
     "resolve message)"),
    ("{{ m.__class__.__mro__ }}", "does not render: access to attribute '__class__' of "
                                  "'AlertMessage' object is unsafe. (for a sample trigger "
                                  "message)"),
    (["not", "a", "string"], "must be a string: a Jinja2 template that renders JSON"),
])
def test_a_body_template_that_is_not_json_is_one_config_line(template: object,
                                                             problem: str) -> None:
    assert template_problems(template) == [f"notifiers.hook.body_template: {problem}"]


def test_check_config_refuses_it_at_start_up(tmp_path: Path,
                                             capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "hookwatch.toml"
    path.write_text(f'''
[notifiers.hook]
type = "webhook"
url = "https://hooks.example.com/in"
secret = "{HOOK_SECRET}"
body_template = """
{{
  "text": {{{{ title }}}}
}}
"""
''')
    assert main(["check-config", str(path)]) != 0
    out = capsys.readouterr()
    lines = [line for line in (out.out + out.err).splitlines() if "body_template" in line]
    assert len(lines) == 1
    assert lines[0].endswith("notifiers.hook.body_template: does not render valid JSON (line 2 "
                             "column 12: unexpected character, expected a JSON value) (for a "
                             "sample trigger message)")
