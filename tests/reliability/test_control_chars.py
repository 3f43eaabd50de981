"""Control characters from a sender, through every output of a real `hookwatch serve`.

The model name carries a newline and a fake log record (the issue's forged line), an ANSI
colour sequence, a C1 CSI, DEL and a right-to-left override; the error and logs carry ESC
sequences too. The alert fires and is delivered to Slack and PagerDuty (local receivers).
Then: the service's own log holds no forged record and no raw control byte, but does hold the
name, escaped; pages and parts show it escaped; Slack's and PagerDuty's text have none raw;
/api/status carries the data exactly, as JSON escapes; /metrics and the other answers say
nosniff. A control test shows the checks catch a raw forged line.
"""

from __future__ import annotations

import json
import time
import unicodedata
import uuid
from collections.abc import Iterator
from typing import Any
from urllib.parse import quote

import httpx
import pytest

from tests.conftest import TOKEN
from tests.notifiers.helpers import Receiver, pagerduty_answer
from tests.reliability.helpers import Serve

pytestmark = pytest.mark.slow

FORGED = "2026-01-01 00:00:00,000 ERROR hookwatch: FORGED LINE: inactive -> firing"
MODEL = f"acme/evil\n{FORGED}\x1b[31m red \x9b2J \x7f \u202eexe.txt"
ERROR = "boom \x1b]0;pwned\x07 \x1b[2J\r\nsecond line"
LOGS = "step 1\r\x1b[Kstep 2\nstep 3"
# Starlette's path convertor (.*) matches no newline: a badge is asked for this name instead.
BADGE_NAME = "acme/evil\x1b[31m red \x9b2J \x7f \u202eexe.txt"


def raw_controls(text: str, allowed: str = "") -> list[str]:
    """The control characters (category Cc, bidi overrides) in text, but those allowed."""
    return [c for c in text if c not in allowed and (unicodedata.category(c) == "Cc"
                                                      or c in "\u202a\u202b\u202c\u202d\u202e")]


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


def forged_records(log: str) -> list[str]:
    return [line for line in log.splitlines() if line.startswith("2026-01-01 00:00:00,000")]


def test_the_checks_catch_raw_controls() -> None:
    assert forged_records(f"x {MODEL}\n") == [FORGED + "\x1b[31m red \x9b2J \x7f \u202eexe.txt"]
    assert raw_controls(MODEL) and not raw_controls("a\\x1b b", allowed="")
    assert raw_controls("a\nb", allowed="\n") == []


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    workdir = tmp_path_factory.mktemp("controls")
    with Receiver() as slack, Receiver(answer=pagerduty_answer) as pagerduty:
        config = workdir / "hookwatch.toml"
        config.write_text(f"""
[notifiers.team]
type = "slack"
webhook_url = "{slack.url}/services/T0/B0/x"

[notifiers.oncall]
type = "pagerduty"
routing_key = "R0ut1ngK3y0f32CharactersForTest1"
events_url = "{pagerduty.url}/v2/enqueue"

[[rules]]
name = "evil-errors"
kind = "error_rate"
scope = "model"
window = "10m"
threshold = 0.2
min_predictions = 4
severity = "critical"
notify = ["team", "oncall"]
""")
        serve = Serve(workdir, {
            "HOOKWATCH_DATABASE_URL": f"sqlite:///{workdir / 'hookwatch.db'}",
            "HOOKWATCH_INGEST_TOKEN": TOKEN, "HOOKWATCH_WEBHOOK_SECRETS": "",
            "HOOKWATCH_CONFIG": str(config), "HOOKWATCH_EVALUATE_INTERVAL": "1",
            "HOOKWATCH_DELIVER_INTERVAL": "0.5",
        }).start()
        try:
            pages: dict[str, httpx.Response] = {}
            with httpx.Client(base_url=serve.url, timeout=10) as client:
                ids = []
                for i in range(8):
                    pid = f"ctl-{i}-{uuid.uuid4().hex[:6]}"
                    ids.append(pid)
                    failed = i % 2 == 1
                    body = json.dumps({"id": pid, "status": "failed" if failed else "succeeded",
                                       "model": MODEL, "deployment": MODEL, "logs": LOGS,
                                       "error": ERROR if failed else None}).encode()
                    answer = client.post("/hooks/replicate", content=body, headers={
                        "content-type": "application/json", "authorization": f"Bearer {TOKEN}"})
                    assert answer.status_code == 200, answer.text
                deadline = time.monotonic() + 60
                while time.monotonic() < deadline and not (slack.requests and pagerduty.requests):
                    time.sleep(0.2)
                for path in ("/", "/parts/live", "/parts/scopes", f"/predictions/{ids[1]}",
                             "/api/status", "/api/predictions", "/metrics", "/healthz",
                             f"/badge/model/{quote(BADGE_NAME, safe='/')}.svg"):
                    pages[path] = client.get(path)
                pages["refused"] = client.post("/hooks/replicate", content=b"{}")
        finally:
            serve.stop()
        yield {"log": serve.log_text(), "pages": pages, "slack": list(slack.requests),
               "pagerduty": list(pagerduty.requests), "ids": ids}


def test_the_log_holds_no_forged_record_and_no_raw_control(served: dict[str, Any]) -> None:
    log: str = served["log"]
    assert "alert evil-errors on model acme/evil\\n2026-01-01 00:00:00,000 ERROR" in log, log
    assert "\\x1b[31m red \\x9b2J \\x7f \\u202eexe.txt" in log
    assert forged_records(log) == []
    assert raw_controls(log, allowed="\n") == []


def test_pages_show_the_name_escaped(served: dict[str, Any]) -> None:
    pages = served["pages"]
    for path in ("/", "/parts/live", "/parts/scopes", f"/predictions/{served['ids'][1]}"):
        page = pages[path]
        assert page.status_code == 200, path
        assert raw_controls(page.text, allowed="\n\r\t") == [], path
        assert "acme/evil" in page.text and "\\x1b[31m" in page.text, path
    prediction = pages[f"/predictions/{served['ids'][1]}"].text
    assert "\\x1b]0;pwned\\x07" in prediction  # the error
    assert "step 1\n\\x1b[Kstep 2\nstep 3" in prediction  # the logs keep their lines
    badge = pages[f"/badge/model/{quote(BADGE_NAME, safe='/')}.svg"]
    assert badge.status_code == 200 and raw_controls(badge.text) == []
    assert "acme/evil\\x1b[31m" in badge.text


def test_the_api_carries_the_data_exactly_as_json(served: dict[str, Any]) -> None:
    for path in ("/api/status", "/api/predictions"):
        answer = served["pages"][path]
        assert not any(b < 0x20 for b in answer.content), path  # JSON escapes them
        assert MODEL in list(strings(answer.json())), path


def test_slack_and_pagerduty_text_holds_no_raw_control(served: dict[str, Any]) -> None:
    assert served["slack"] and served["pagerduty"], "the alert must reach both"
    for request in served["slack"]:
        texts = list(strings(request.json()))
        assert any("acme/evil\\n2026-01-01" in t for t in texts), texts
        for text in texts:
            assert raw_controls(text, allowed="\n") == [], text  # the template's own lines
            assert forged_records(text) == [], text
    for request in served["pagerduty"]:
        event = request.json()
        assert event["payload"]["component"].startswith("acme/evil\\n2026")
        for text in strings(event):
            assert raw_controls(text) == [], text


def test_every_answer_says_nosniff(served: dict[str, Any]) -> None:
    for path, answer in served["pages"].items():
        assert answer.headers.get("x-content-type-options") == "nosniff", path
    assert served["pages"]["/metrics"].status_code == 200
    assert served["pages"]["refused"].status_code == 401
