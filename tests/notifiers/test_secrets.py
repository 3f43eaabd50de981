"""No secret (webhook URL, routing key, token, password) in logs, errors, stored rows or output."""

from __future__ import annotations

import logging
import ssl
from pathlib import Path
from typing import Any

import orjson
import pytest
from aiosmtpd.smtp import AuthResult, LoginPassword
from sqlalchemy import Engine
from sqlmodel import Session, select

from hookwatch.storage.tables import DeliveryAttempt, Notification
from tests.conftest import ManualClock
from tests.notifiers.helpers import (
    DISCORD_PATH,
    HOOK_SECRET,
    NTFY_TOKEN,
    NTFY_TOPIC,
    ROUTING_KEY,
    SLACK_PATH,
    SLACK_TOKEN,
    SMTP_PASSWORD,
    TEAMS_PATH,
    TEAMS_SIG,
    TELEGRAM_TOKEN,
    Answer,
    Receiver,
    Request,
    SmtpRecorder,
    alert,
    enqueue,
    make_worker,
    notifier_configs,
    self_signed,
    smtp_controller,
)

HOOK_QUERY_TOKEN = "qu3ryT0kenS3cret"
SECRETS = (ROUTING_KEY, SLACK_PATH, "sl4ckS3cretP4th", SLACK_TOKEN, SMTP_PASSWORD,
           HOOK_SECRET.removeprefix("whsec_"), HOOK_QUERY_TOKEN,
           DISCORD_PATH, DISCORD_PATH.rsplit("/", 1)[1], TEAMS_SIG, TELEGRAM_TOKEN,
           TELEGRAM_TOKEN.split(":")[1], NTFY_TOKEN, NTFY_TOPIC)


def echo(request: Request) -> Answer:
    """A hostile receiver: its error answer repeats everything it was sent."""
    told = f"{request.path} {orjson.dumps(request.headers).decode()} ".encode() + request.body
    return 500, {"content-type": "text/plain"}, told


def echoing_auth(server: Any, session: Any, envelope: Any, mechanism: str,
                 auth_data: Any) -> AuthResult:
    password = auth_data.password.decode() if isinstance(auth_data, LoginPassword) else "?"
    return AuthResult(success=False, handled=False,
                      message=f"535 5.7.8 password {password} is wrong")


def assert_clean(text: str) -> None:
    for secret in SECRETS:
        assert secret not in text


def test_no_secret_anywhere(sqlite_engine: Engine, clock: ManualClock, tmp_path: Path,
                            caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    cert, key = self_signed(tmp_path)
    tls = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    tls.load_cert_chain(cert, key)
    smtp = smtp_controller(SmtpRecorder(), tls_context=tls, require_starttls=True,
                           authenticator=echoing_auth)
    try:
        with Receiver(answer=echo) as server:
            configs = notifier_configs({
                "pd": {"type": "pagerduty", "routing_key": ROUTING_KEY,
                       "events_url": server.url + "/v2/enqueue"},
                "slack": {"type": "slack", "webhook_url": server.url + SLACK_PATH},
                "bot": {"type": "slack", "token": SLACK_TOKEN, "channel": "C1",
                        "api_url": server.url + "/api/"},
                "hook": {"type": "webhook", "secret": HOOK_SECRET,
                         "url": f"{server.url}/alerts?token={HOOK_QUERY_TOKEN}"},
                "mail": {"type": "email", "smtp_host": "127.0.0.1", "smtp_port": smtp.port,
                         "starttls": True, "ca_file": str(cert), "username": "alerts",
                         "password": SMTP_PASSWORD, "from": "hookwatch@example.com",
                         "to": "oncall@example.com"},
                "discord": {"type": "discord", "webhook_url": server.url + DISCORD_PATH},
                "teams": {"type": "teams", "webhook_url": server.url + TEAMS_PATH},
                "telegram": {"type": "telegram", "bot_token": TELEGRAM_TOKEN, "chat_id": "-100",
                             "api_url": server.url},
                "ntfy": {"type": "ntfy", "url": server.url + NTFY_TOPIC, "token": NTFY_TOKEN},
            })
            worker = make_worker(sqlite_engine, configs)
            for name in configs:
                enqueue(sqlite_engine, alert(), notifier=name, now=clock.now)
            report = worker.deliver(clock.now)
            assert len(server.requests) == 8
            # the receiver did echo the secrets back; they went no further
            assert any(ROUTING_KEY.encode() in r.body for r in server.requests)
            assert any(TELEGRAM_TOKEN in r.path for r in server.requests)
            assert any(NTFY_TOKEN in r.headers.get("authorization", "") for r in server.requests)
    finally:
        smtp.stop()
    assert (report.retried, report.failed) == (8, 1)  # the refused login is permanent
    with Session(sqlite_engine) as session:
        stored = [r.last_error or "" for r in session.exec(select(Notification))]
        stored += [a.error or "" for a in session.exec(select(DeliveryAttempt))]
    assert all(stored)
    assert any("[redacted]" in text for text in stored)
    assert any("535 5.7.8 password [redacted] is wrong" in text for text in stored)
    assert_clean("\n".join(stored))
    # aiosmtpd's "mail.log" is the test server's own log of the hostile answer it sent
    ours = [r for r in caplog.records if not r.name.startswith("mail.log")]
    assert any(r.name.startswith("hookwatch.notifiers") for r in ours)
    assert_clean("\n".join(r.getMessage() for r in ours))
