"""Secrets and privacy across a full run: no configured secret in any log line, error, page or
API answer; prediction inputs and outputs hidden by default; tokens compared in constant time.

The full run is a real `hookwatch serve` with every secret configured: two signing secrets, the
ingest, dashboard and Replicate tokens, and a notifier of each kind whose credentials come from
the environment. Its notifier receivers and the fake Replicate API echo whatever they are sent
in their error answers, as a hostile or broken upstream might. It ingests a `hookwatch simulate`
run, refuses bad requests, fires alerts, delivers (and fails to deliver) them, and reconciles.
"""

from __future__ import annotations

import base64
import hmac
import json
import os
import sqlite3
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any
from urllib.parse import quote, quote_plus

import httpx
import orjson
import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from tests.conftest import ManualClock, signed_headers
from tests.notifiers.helpers import Receiver, Request, SmtpRecorder, smtp_controller
from tests.reliability.helpers import RecordingServer, Serve

SIGNING = "whsec_" + base64.b64encode(b"signing-secret-one-for-hookwatch").decode()
SIGNING_OLD = "whsec_" + base64.b64encode(b"signing-secret-two-rotated-out!!").decode()
INGEST = "ingest-T0ken-5f2a9c81d7"
DASHBOARD = "dashb0ard-T0ken-77aa31bc"
REPLICATE = "r8_Repl1cateT0kenForTests0123456789ab"
ROUTING_KEY = "PDr0utingKey0f32CharsForTests012"
SLACK_SECRET = "sl4ckW3bhookS3cretPathPart"
SMTP_PASSWORD = "smtp-Passw0rd-4-tests"
ALERT_HOOK = "whsec_" + base64.b64encode(b"outgoing-alert-webhook-secret!!!").decode()
DISCORD_TOKEN = "d1sc0rdW3bhookT0kenForTheFullRun"
TEAMS_SIG = "t3amsW0rkflowS1gForTheFullRun"
TELEGRAM_TOKEN = "987654321:AAtelegramBotT0kenForTheFullRun_x"
NTFY_TOKEN = "tk_ntfyT0kenForTheFullRun0123"
NTFY_TOPIC = "hookwatch-oncall-s3cretTopic"
SECRETS = {
    "webhook secret": SIGNING, "old webhook secret": SIGNING_OLD, "ingest token": INGEST,
    "dashboard token": DASHBOARD, "replicate token": REPLICATE, "routing key": ROUTING_KEY,
    "slack webhook path": SLACK_SECRET, "smtp password": SMTP_PASSWORD,
    "alert webhook secret": ALERT_HOOK, "discord token": DISCORD_TOKEN, "teams sig": TEAMS_SIG,
    "telegram token": TELEGRAM_TOKEN, "telegram secret part": TELEGRAM_TOKEN.split(":")[1],
    "ntfy token": NTFY_TOKEN, "ntfy topic": NTFY_TOPIC,
}
PRIVATE = ("PRIVATE-INPUT-7d1e", "PRIVATE-OUTPUT-9c2f")


def forms(secret: str) -> set[str]:
    """The shapes a secret could leak in: as is, URL-encoded, a whsec_'s key alone."""
    found = {secret, quote(secret, safe=""), quote_plus(secret)}
    if secret.startswith("whsec_"):
        found.add(secret.removeprefix("whsec_"))
    return found


def leaks(text: str) -> list[str]:
    return [name for name, secret in SECRETS.items() if any(f in text for f in forms(secret))]


def echo(request: Request) -> tuple[int, dict[str, str], bytes]:
    """A hostile upstream: its error answer repeats the path, headers and body it was sent."""
    told = f"{request.path} {orjson.dumps(request.headers).decode()} ".encode() + request.body
    return 500, {"content-type": "text/plain"}, told


def wait_for(check: Callable[[], bool], timeout: float = 30.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return True
        time.sleep(0.2)
    return False


@pytest.fixture
def upstreams() -> Iterator[tuple[Receiver, RecordingServer, int]]:
    smtp = smtp_controller(SmtpRecorder(refuse=["451 4.3.0 try later"] * 1000))
    try:
        with Receiver(answer=echo) as hooks, RecordingServer() as api:
            yield hooks, api, smtp.port
    finally:
        smtp.stop()


@pytest.mark.slow
def test_no_secret_in_any_log_error_page_or_answer_of_a_full_run(
    tmp_path: Path, upstreams: tuple[Receiver, RecordingServer, int]
) -> None:
    hooks, api, smtp_port = upstreams
    # The fake Replicate API refuses the token, repeating it in its answer.
    api.default = (401, {"content-type": "application/json"},
                   json.dumps({"detail": f"Invalid token {REPLICATE}"}).encode())
    config = tmp_path / "hookwatch.toml"
    config.write_text(f"""
[notifiers.oncall]
type = "pagerduty"
routing_key = "${{PD_KEY}}"
events_url = "{hooks.url}/v2/enqueue"

[notifiers.team]
type = "slack"
webhook_url = "{hooks.url}/services/T0/B0/${{SLACK_SECRET}}"

[notifiers.mail]
type = "email"
smtp_host = "127.0.0.1"
smtp_port = {smtp_port}
username = "alerts"
password = "${{SMTP_PASSWORD}}"
from = "hookwatch@example.com"
to = ["oncall@example.com"]

[notifiers.hook]
type = "webhook"
url = "{hooks.url}/alerts"
secret = "${{ALERT_HOOK}}"

[notifiers.chat]
type = "discord"
webhook_url = "{hooks.url}/api/webhooks/1234567890/${{DISCORD_TOKEN}}"

[notifiers.room]
type = "teams"
webhook_url = "{hooks.url}/workflows/abc/triggers/manual/paths/invoke?api-version=1&sig=${{TEAMS_SIG}}"

[notifiers.tg]
type = "telegram"
bot_token = "${{TELEGRAM_TOKEN}}"
chat_id = "-1001234567890"
api_url = "{hooks.url}"

[notifiers.phone]
type = "ntfy"
url = "{hooks.url}/${{NTFY_TOPIC}}"
token = "${{NTFY_TOKEN}}"

[[rules]]
name = "model-errors"
kind = "error_rate"
scope = "model"
window = "5m"
threshold = 0.2
min_predictions = 5
severity = "critical"
notify = ["oncall", "team", "mail", "hook", "chat", "room", "tg", "phone"]
""")
    db = tmp_path / "secrets.db"
    env = {
        "HOOKWATCH_DATABASE_URL": f"sqlite:///{db}",
        "HOOKWATCH_CONFIG": str(config),
        "HOOKWATCH_WEBHOOK_SECRETS": f"{SIGNING} {SIGNING_OLD}",
        "HOOKWATCH_INGEST_TOKEN": INGEST,
        "HOOKWATCH_DASHBOARD_TOKEN": DASHBOARD,
        "HOOKWATCH_REPLICATE_API_TOKEN": REPLICATE,
        "HOOKWATCH_REPLICATE_API_URL": api.url + "/v1",
        "HOOKWATCH_RECONCILE_AFTER": "0",
        "HOOKWATCH_RECONCILE_INTERVAL": "0.5",
        "HOOKWATCH_EVALUATE_INTERVAL": "0.5",
        "HOOKWATCH_DELIVER_INTERVAL": "0.5",
        "PD_KEY": ROUTING_KEY, "SLACK_SECRET": SLACK_SECRET, "SMTP_PASSWORD": SMTP_PASSWORD,
        "ALERT_HOOK": ALERT_HOOK, "DISCORD_TOKEN": DISCORD_TOKEN, "TEAMS_SIG": TEAMS_SIG,
        "TELEGRAM_TOKEN": TELEGRAM_TOKEN, "NTFY_TOKEN": NTFY_TOKEN, "NTFY_TOPIC": NTFY_TOPIC,
    }
    serve = Serve(tmp_path, env, "--access-log", "--log-level", "debug")
    answers: list[tuple[str, str]] = []  # (what was asked, what came back)

    def keep(response: httpx.Response) -> httpx.Response:
        headers = {k: v for k, v in response.headers.items() if k != "set-cookie"}
        asked = f"{response.request.method} {response.request.url.path}"
        answers.append((asked, f"{response.status_code} {headers} {response.text}"))
        return response

    outputs: list[str] = []
    try:
        serve.start()
        hook_url = serve.url + "/hooks/replicate"
        # A simulate run: signed lifecycles, half failing, so the rule fires.
        sim = subprocess.run(
            [sys.executable, "-m", "hookwatch", "simulate", "--url", hook_url, "--secret", SIGNING,
             "--rate", "30", "--duration", "1", "--failure-rate", "0.6", "--model", "acme/leak"],
            capture_output=True, text=True, timeout=60, env={**os.environ, **env},
        )
        outputs.append(sim.stdout + sim.stderr)
        assert sim.returncode == 0, sim.stdout + sim.stderr
        with httpx.Client(base_url=serve.url, timeout=10) as http:
            # A Cog server's webhook with the ingest token, carrying private input and output.
            cog = json.dumps({"id": "private-1", "status": "succeeded", "model": "acme/leak",
                              "input": {"prompt": PRIVATE[0]}, "output": PRIVATE[1]}).encode()
            keep(http.post("/hooks/replicate", content=cog, headers={
                "content-type": "application/json", "authorization": f"Bearer {INGEST}"}))
            # A prediction that never finishes, for the reconciler to ask about.
            stuck = b'{"id":"stuck1","status":"starting","model":"acme/leak"}'
            keep(http.post("/hooks/replicate", content=stuck,
                           headers=signed_headers(stuck, secret=SIGNING_OLD)))
            # Bad requests that hold (parts of) secrets.
            for bad in (f"Bearer {INGEST}x", f"Bearer x{INGEST}", f"Basic {INGEST}",
                        f"Bearer {DASHBOARD}"):
                keep(http.post("/hooks/replicate", content=cog, headers={
                    "content-type": "application/json", "authorization": bad}))
            forged = signed_headers(cog, secret=ALERT_HOOK)
            keep(http.post("/hooks/replicate", content=cog, headers=forged))
            keep(http.post("/hooks/replicate", content=b"{" * 10, headers={
                "content-type": "application/json", "authorization": f"Bearer {INGEST}"}))
            keep(http.get("/api/predictions", headers={"authorization": f"Bearer {DASHBOARD}x"}))
            keep(http.get(f"/api/status?token={DASHBOARD}x"))
            keep(http.get(f"/?token={DASHBOARD}", headers={"accept": "text/html"}))
            keep(http.get(f"/api/status?token={DASHBOARD}"))
            # Wait for the alert to fire, its deliveries to fail, and the reconciler to ask.
            assert wait_for(lambda: len(hooks.requests) >= 8 and len(api.requests) >= 2), (
                len(hooks.requests), len(api.requests), serve.log_text()[-3000:])
            # Everything a signed-in user can read.
            auth = {"authorization": f"Bearer {DASHBOARD}"}
            pages = ["/", "/api/status", "/api/alerts", "/api/silences", "/api/predictions",
                     "/api/predictions/private-1", "/metrics", "/openapi.json", "/readyz",
                     "/healthz", "/badge/model/acme/leak.svg", "/predictions/private-1",
                     "/alerts", "/docs", "/nope"]
            alerts = keep(http.get("/api/alerts", headers=auth)).json()
            for item in alerts if isinstance(alerts, list) else alerts.get("alerts", []):
                pages.append(f"/api/alerts/{item['id']}")
                pages.append(f"/alerts/{item['id']}")
            for page in pages:
                keep(http.get(page, headers=auth))
                keep(http.get(page, headers={"accept": "text/html"}))  # refused, unsigned
        check = subprocess.run([sys.executable, "-m", "hookwatch", "check-config", str(config)],
                               capture_output=True, text=True, timeout=60,
                               env={**os.environ, **env})
        outputs.append(check.stdout + check.stderr)
    finally:
        serve.stop()  # a graceful stop, so shutdown logging is scanned too

    logs = serve.log_text()
    assert "model-errors" in logs or len(hooks.requests) >= 8  # the run did what it should
    with sqlite3.connect(db) as conn:
        stored = [str(v) for table, cols in (
            ("delivery_attempts", "error"), ("notifications", "last_error || payload"),
            ("alerts", "summary"), ("events", "headers"),
        ) for (v,) in conn.execute(f"SELECT {cols} FROM {table}") if v]
    assert leaks(logs) == [], [line for line in logs.splitlines() if leaks(line)][:5]
    assert leaks("\n".join(outputs)) == []
    leaked = [(asked, leaks(text), text[:300]) for asked, text in answers if leaks(text)]
    assert leaked == []
    assert leaks("\n".join(stored)) == []
    # What the upstreams got proves the secrets were in use (the scan is not vacuous).
    assert any(REPLICATE in r.headers.get("authorization", "") for r in api.requests)
    assert any(ROUTING_KEY.encode() in r.body for r in hooks.requests)
    assert any(TELEGRAM_TOKEN in r.path for r in hooks.requests)
    assert any(TEAMS_SIG in r.path for r in hooks.requests)
    assert any(DISCORD_TOKEN in r.path for r in hooks.requests)
    assert any(NTFY_TOKEN in r.headers.get("authorization", "") for r in hooks.requests)
    # Inputs and outputs: stored raw for the retention period, never shown by default.
    assert not [asked for asked, text in answers if any(p in text for p in PRIVATE)]


def test_inputs_and_outputs_show_only_when_enabled(
    app_factory: Callable[..., FastAPI], clock: ManualClock
) -> None:
    """The control for the privacy check above: with show_payloads on, the page shows them."""
    body = json.dumps({"id": "shown-1", "status": "succeeded", "model": "acme/x",
                       "input": {"prompt": PRIVATE[0]}, "output": PRIVATE[1]}).encode()
    for show in (False, True):
        with TestClient(app_factory(show_payloads=show)) as client:
            assert client.post("/hooks/replicate", content=body,
                               headers=signed_headers(body, timestamp=clock.now)).status_code == 200
            texts = [client.get(p).text for p in (
                "/api/predictions/shown-1", "/api/predictions", "/predictions/shown-1", "/")]
            shown = any(PRIVATE[0] in t for t in texts)
            assert shown is show


def test_tokens_are_compared_in_constant_time(
    app_factory: Callable[..., FastAPI], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Dashboard and ingest tokens are decided by hmac.compare_digest: made to say no, the
    right tokens fail; made to say yes, wrong ones pass. A `==` anywhere would ignore it."""
    seen: list[tuple[Any, Any]] = []
    real = hmac.compare_digest
    verdict: dict[str, bool | None] = {"value": None}

    def spy(a: Any, b: Any) -> bool:
        seen.append((a, b))
        return real(a, b) if verdict["value"] is None else bool(verdict["value"])

    monkeypatch.setattr(hmac, "compare_digest", spy)
    body = b'{"id":"ct-1","status":"starting"}'
    with TestClient(app_factory(dashboard_token=DASHBOARD, ingest_token=INGEST)) as client:
        right = {"authorization": f"Bearer {DASHBOARD}"}
        ingest = {"content-type": "application/json", "authorization": f"Bearer {INGEST}"}
        assert client.get("/api/predictions", headers=right).status_code == 200
        assert client.post("/hooks/replicate", content=body, headers=ingest).status_code == 200
        assert any(DASHBOARD.encode() in (_bytes(a), _bytes(b)) for a, b in seen)
        assert any(INGEST.encode() in (_bytes(a), _bytes(b)) for a, b in seen)
        verdict["value"] = False
        assert client.get("/api/predictions", headers=right).status_code == 401
        assert client.post("/hooks/replicate", content=body, headers=ingest).status_code == 401
        verdict["value"] = True
        wrong = {"authorization": "Bearer nope"}
        assert client.get("/api/predictions", headers=wrong).status_code == 200
        assert client.post("/hooks/replicate", content=body, headers={
            "content-type": "application/json", "authorization": "Bearer nope"}).status_code == 200


def _bytes(value: Any) -> bytes:
    return value.encode() if isinstance(value, str) else bytes(value)


