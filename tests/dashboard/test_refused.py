"""Refused webhooks made visible: /api/status's `refused`, the page's banner and note, the
nothing-configured headline, and log lines that never quote a secret or a header's value."""

from __future__ import annotations

import logging
import re
import time
from collections.abc import Callable
from pathlib import Path

import httpx
import orjson
import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from tests.conftest import SECRET, TOKEN, ManualClock, signed_headers
from tests.dashboard import helpers
from tests.reliability.helpers import Serve

WRONG = "whsec_d3JvbmcgcGFydHkgc2VjcmV0IGtleSBieXRlcw=="
HTML = {"accept": "text/html"}


def _headline(client: TestClient) -> str:
    page = client.get("/", headers=HTML).text
    found = re.search(r'<section id="headline".*?</section>', page, re.S)
    assert found is not None
    return re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", found.group(0))).strip()


def test_most_webhooks_refused_shows_a_banner_counts_by_reason_and_logs_once_a_minute(
    dash_app: Callable[..., FastAPI], clock: ManualClock, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="hookwatch.hooks")
    with TestClient(dash_app()) as client:
        for _ in range(9):
            helpers.send(client, clock, helpers.body("succeeded", at=clock.now))
        for i in range(41):
            raw = orjson.dumps(helpers.body("failed", at=clock.now, error="x"))
            headers = signed_headers(raw, secret=WRONG, timestamp=clock.now)
            if i == 40:  # and one with a wrong bearer token, of another reason
                headers = {"authorization": "Bearer not-the-token-s3cr3t"}
            answer = client.post("/hooks/replicate", content=raw, headers=headers)
            assert answer.status_code == 401
            clock.advance(1)
        refused = client.get("/api/status").json()["refused"]
        assert refused["configured"] is True
        assert refused["5m"] == {"received": 50, "refused": 41,
                                 "reasons": {"bad_signature": 40, "wrong_token": 1},
                                 "codes": {"invalid_signature": 40, "invalid_token": 1}}
        assert refused["1h"]["refused"] == 41
        headline = _headline(client)
        assert ("41 of 50 webhooks in the last 5 minutes were refused: bad signature — check "
                "HOOKWATCH_WEBHOOK_SECRETS") in headline
        assert "also wrong token 1" in headline
        assert "All good" not in headline and headline.startswith("Webhooks are being refused")

        clock.advance(6 * 60)  # out of the 5 minutes, inside the hour: a quiet note
        helpers.send(client, clock, helpers.body("succeeded", at=clock.now))
        headline = _headline(client)
        assert headline.startswith("All good")
        assert ("41 of 51 webhooks refused in the last hour: bad signature 40, wrong token 1"
                in headline)
        clock.advance(3600)
        assert "refused" not in _headline(client)

    lines = [r.getMessage() for r in caplog.records if r.name == "hookwatch.hooks"]
    assert len(lines) == 2  # one per reason: the 40 bad signatures came within a minute
    assert lines[0].startswith("a webhook was refused: bad signature (HTTP 401; "
                               "1 invalid_signature)")
    assert lines[1].startswith("a webhook was refused: wrong token (HTTP 401; 1 invalid_token)")
    text = caplog.text
    assert "not-the-token-s3cr3t" not in text and WRONG not in text and TOKEN not in text
    assert "v1," not in text  # no signature header's value either


def test_with_nothing_configured_the_page_never_says_all_good(
    dash_app: Callable[..., FastAPI], clock: ManualClock
) -> None:
    with TestClient(dash_app(webhook_secrets=[], ingest_token=None)) as client:
        headline = _headline(client)
        assert headline.startswith("Nothing can be received")
        assert "set HOOKWATCH_WEBHOOK_SECRETS or HOOKWATCH_INGEST_TOKEN" in headline
        assert "All good" not in headline
        page = client.get("/", headers=HTML).text
        assert 'class="headline lvl-bad"' in page
        raw = orjson.dumps(helpers.body("succeeded", at=clock.now))
        answer = client.post("/hooks/replicate", content=raw, headers=signed_headers(raw))
        assert answer.status_code == 401 and answer.json()["error"] == "not_configured"
        refused = client.get("/api/status").json()["refused"]
        assert refused["configured"] is False
        assert refused["5m"]["reasons"] == {"not_configured": 1}
        live = client.get("/parts/live", headers={"hx-request": "true"}).text
        assert "Nothing can be received" in live  # the refreshed headline says it too


def test_a_served_hookwatch_with_the_wrong_secret_logs_it_and_shows_it(tmp_path: Path) -> None:
    """From outside: a real `hookwatch serve`, a sender signing with another secret."""
    env = {"HOOKWATCH_DATABASE_URL": f"sqlite:///{tmp_path}/data/hookwatch.db",
           "HOOKWATCH_WEBHOOK_SECRETS": SECRET, "HOOKWATCH_WRITER_PROCESS": "false",
           "HOOKWATCH_DASHBOARD_TOKEN": "", "HOOKWATCH_PUBLIC_URL": "", "HOOKWATCH_DATA_DIR": ""}
    server = Serve(tmp_path, env, "--host", "127.0.0.1").start()
    try:
        for _ in range(5):
            raw = orjson.dumps(helpers.body("succeeded", at=time.time()))
            answer = httpx.post(server.url + "/hooks/replicate", content=raw,
                                headers=signed_headers(raw, secret=WRONG))
            assert answer.status_code == 401
        status = httpx.get(server.url + "/api/status").json()
        assert status["refused"]["5m"]["reasons"] == {"bad_signature": 5}
        page = httpx.get(server.url + "/", headers=HTML).text
        assert "5 of 5 webhooks in the last 5 minutes were refused: bad signature" in page
    finally:
        server.stop()
    log = server.log_text()
    assert log.count("webhook was refused: bad signature (HTTP 401; 1 invalid_signature)") == 1
    assert WRONG not in log and SECRET not in log
