"""Message text from the templates: escaping per channel, size limits, header injection."""

from __future__ import annotations

import email
import email.policy
from typing import Any

from hookwatch.notifiers.base import SendContext
from hookwatch.notifiers.mail import EmailOptions, build_email
from hookwatch.notifiers.message import TopError
from hookwatch.notifiers.pagerduty import SUMMARY_MAX, build_event
from hookwatch.notifiers.render import context, duration, render, slack_escape
from hookwatch.notifiers.slack import HEADER_TEXT_MAX, MAX_BLOCKS, SECTION_TEXT_MAX, build_blocks
from tests.notifiers.helpers import ROUTING_KEY, alert

OPTIONS = EmailOptions(
    smtp_host="localhost", smtp_port=25, starttls=False, implicit_tls=False, username=None,
    password=None, sender="hookwatch@example.com", to=("oncall@example.com",), ca_file=None,
    timeout=5,
)


def test_titles_per_kind() -> None:
    assert context(alert())["title"] == (
        "[FIRING · critical] deployment acme/sdxl: error rate 35.0% (threshold 20.0%) over 10m")
    resolved = alert("resolve", resolved_at=1_795_000_900.0, at=1_795_000_900.0)
    assert context(resolved)["title"] == (
        "[RESOLVED] deployment acme/sdxl: deployment-error-rate is back to normal after 15m")
    acked = alert("acknowledge", acknowledged_by="alice")
    assert context(acked)["title"].startswith("[ACKNOWLEDGED by alice] deployment acme/sdxl")
    assert context(alert("reminder"))["title"].startswith("[STILL FIRING · critical]")
    assert context(alert("test", summary="hello"))["title"] == "[TEST] hello"


def test_measures_per_rule_kind() -> None:
    def measure(**changes: Any) -> str:
        return str(context(alert(**changes))["measure"])

    assert measure(rule_kind="burn_rate", value=14.4, threshold=6.0, window_seconds=3600) == (
        "error budget burning 14.4x (threshold 6.0x) over 1h")
    assert measure(rule_kind="stuck", value=3, threshold=1, window_seconds=1800) == (
        "3 prediction(s) stuck for over 30m (threshold 1)")
    assert measure(rule_kind="no_traffic", value=0, threshold=None, window_seconds=900) == (
        "0 prediction(s) in the last 15m")
    assert measure(rule_kind="latency", value=91.7, threshold=60.0, window_seconds=900) == (
        "latency 91.7 s (threshold 60 s) over 15m, ±19% (bucketed)")
    assert measure(rule_kind="spend", value=31.2, threshold=25.0, window_seconds=3600) == (
        "spend $31.20 (threshold $25.00) over 1h")
    assert measure(value=None, summary="no number") == "no number"
    assert duration(5400) == "1h30m" and duration(90) == "1m30s"


def test_slack_escapes_only_three_characters() -> None:
    assert slack_escape("a & b <c> 'd' \"e\"") == "a &amp; b &lt;c&gt; 'd' \"e\""
    message = alert(scope_name="acme/<b>&co", summary="rate > 20% & rising")
    _text, blocks = build_blocks(message)
    body = blocks[1]["text"]["text"]
    assert "rate &gt; 20% &amp; rising" in body
    assert "acme/&lt;b&gt;&amp;co" in body
    errors = blocks[2]["text"]["text"]
    # a backtick would close the code span; it becomes a quote
    assert "ValueError: &lt;prompt&gt; &amp; 'seed' must be set" in errors
    # the template's own link syntax is not escaped
    assert "<https://hooks.example.com/alerts/7|details>" in blocks[-1]["elements"][0]["text"]


def test_slack_stays_inside_block_kit_limits() -> None:
    many = [TopError(f"{i:016x}", 1000 - i, "Traceback & <frames> " * 40) for i in range(200)]
    message = alert(scope_name="x" * 400, summary="s&" * 2000, top_errors=many)
    text, blocks = build_blocks(message)
    assert len(blocks) <= MAX_BLOCKS
    assert len(blocks[0]["text"]["text"]) <= HEADER_TEXT_MAX
    for block in blocks[1:3]:
        section = block["text"]["text"]
        assert len(section) <= SECTION_TEXT_MAX
        assert not section.rstrip("…").endswith(("&", "&a", "&am", "&amp"))  # no cut entity
    assert len(text) <= 3000


def test_pagerduty_summary_is_capped() -> None:
    event = build_event(alert(scope_name="m" * 2000), routing_key=ROUTING_KEY)
    assert len(event["payload"]["summary"]) == SUMMARY_MAX


def test_email_headers_cannot_be_injected() -> None:
    message = alert(scope_name="acme/sdxl\r\nBcc: victim@example.com\r\n\r\nbody",
                    alert_key="k\nX-Evil: 1")
    mail = build_email(OPTIONS, message, SendContext(now=1_795_000_100.0, notification_id=5))
    raw = mail.as_bytes()
    parsed = email.message_from_bytes(raw, policy=email.policy.default)
    assert parsed["Bcc"] is None and parsed["X-Evil"] is None
    assert "Bcc: victim@example.com" in str(parsed["Subject"])  # flattened into the subject
    assert parsed["Message-ID"].startswith("<hookwatch.5.")
    assert parsed["Message-ID"] == build_email(
        OPTIONS, message, SendContext(now=1.0, notification_id=5))["Message-ID"]  # stable
    assert [p.get_content_type() for p in parsed.iter_parts()] == ["text/plain", "text/html"]


def test_email_html_is_escaped_and_text_is_not() -> None:
    message = alert(summary="<script>alert(1)</script> & more")
    html = render("email.html.j2", message)
    text = render("email.txt.j2", message)
    assert "&lt;script&gt;alert(1)&lt;/script&gt; &amp; more" in html
    assert "<script>" not in html
    assert "<script>alert(1)</script> & more" in text
    assert "42 failed" in text and "CUDA out of memory" in text
    assert "https://hooks.example.com/alerts/7" in text


def test_resolution_mail_threads_under_the_trigger() -> None:
    mail = build_email(OPTIONS, alert("resolve", resolved_at=1_795_000_900.0),
                       SendContext(now=1.0, notification_id=9, thread_ref="<hookwatch.5.ab@x>"))
    assert mail["In-Reply-To"] == "<hookwatch.5.ab@x>"
    assert mail["References"] == "<hookwatch.5.ab@x>"
