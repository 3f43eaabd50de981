"""Email through a real SMTP server (aiosmtpd): plain, STARTTLS + login, implicit TLS, failures."""

from __future__ import annotations

import email
import email.policy
import ssl
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from hookwatch.notifiers.base import NotifyError, SendContext
from hookwatch.notifiers.mail import EmailNotifier
from hookwatch.notifiers.registry import NotifierConfig
from tests.conftest import free_port
from tests.notifiers.helpers import (
    SMTP_PASSWORD,
    SmtpRecorder,
    alert,
    authenticator,
    notifier_configs,
    self_signed,
    smtp_controller,
)

NOW = 1_795_000_100.0


@pytest.fixture(scope="module")
def tls(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, ssl.SSLContext]:
    cert, key = self_signed(tmp_path_factory.mktemp("tls"))
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(cert, key)
    return cert, context


def mail_config(port: int, **extra: Any) -> NotifierConfig:
    table = {"type": "email", "smtp_host": "127.0.0.1", "smtp_port": port,
             "from": "hookwatch <hookwatch@example.com>",
             "to": ["oncall@example.com", "ml@example.com"], "timeout": 5}
    table.update(extra)
    return notifier_configs({"mail": table})["mail"]


def notifier(config: NotifierConfig) -> EmailNotifier:
    assert isinstance(config.options, type(config.options))
    return EmailNotifier(config.name, config.options)  # type: ignore[arg-type]


@pytest.fixture
def recorder() -> SmtpRecorder:
    return SmtpRecorder()


@pytest.fixture
def plain(recorder: SmtpRecorder) -> Iterator[int]:
    controller = smtp_controller(recorder)
    yield controller.port
    controller.stop()


def parsed(recorder: SmtpRecorder, index: int = 0) -> email.message.EmailMessage:
    content = recorder.messages[index].original_content
    assert content is not None
    message = email.message_from_bytes(content, policy=email.policy.default)
    assert isinstance(message, email.message.EmailMessage)
    return message


def test_plain_smtp_delivers_text_and_html(plain: int, recorder: SmtpRecorder) -> None:
    result = notifier(mail_config(plain)).send(alert(), SendContext(now=NOW, notification_id=3))
    assert len(recorder.messages) == 1
    envelope = recorder.messages[0]
    assert envelope.mail_from == "hookwatch@example.com"
    assert envelope.rcpt_tos == ["oncall@example.com", "ml@example.com"]
    message = parsed(recorder)
    assert message["Subject"] == f"[hookwatch] deployment acme/sdxl: {alert().rule}"
    assert message["Message-ID"] == result.external_ref if result else False
    assert message["Message-ID"].startswith("<hookwatch.3.")
    assert message["Auto-Submitted"] == "auto-generated"
    text = message.get_body(("plain",))
    html = message.get_body(("html",))
    assert text is not None and html is not None
    assert "42 failed" in text.get_content()
    assert "&lt;prompt&gt; &amp;" in html.get_content()


def test_starttls_with_login(tls: tuple[Path, ssl.SSLContext], recorder: SmtpRecorder) -> None:
    cert, context = tls
    controller = smtp_controller(
        recorder, tls_context=context, require_starttls=True, auth_required=True,
        authenticator=authenticator("alerts", SMTP_PASSWORD),
    )
    try:
        config = mail_config(controller.port, starttls=True, username="alerts",
                             password=SMTP_PASSWORD, ca_file=str(cert))
        notifier(config).send(alert(), SendContext(now=NOW, notification_id=4))
        assert len(recorder.messages) == 1

        wrong = mail_config(controller.port, starttls=True, username="alerts",
                            password="not-the-password", ca_file=str(cert))
        with pytest.raises(NotifyError) as info:
            notifier(wrong).send(alert(), SendContext(now=NOW))
        assert not info.value.retryable
        assert info.value.detail.startswith("SMTP login refused: 535")
        assert "not-the-password" not in info.value.detail

        untrusted = mail_config(controller.port, starttls=True, username="alerts",
                                password=SMTP_PASSWORD)
        with pytest.raises(NotifyError) as info:
            notifier(untrusted).send(alert(), SendContext(now=NOW))
        assert not info.value.retryable
        assert "not trusted" in info.value.detail

        no_tls = mail_config(controller.port)  # the server insists on STARTTLS first
        with pytest.raises(NotifyError) as info:
            notifier(no_tls).send(alert(), SendContext(now=NOW))
        assert not info.value.retryable and "530" in info.value.detail
    finally:
        controller.stop()
    assert len(recorder.messages) == 1


@pytest.mark.filterwarnings("ignore:Requiring AUTH while not requiring TLS")
def test_implicit_tls_with_login(tls: tuple[Path, ssl.SSLContext], recorder: SmtpRecorder) -> None:
    cert, context = tls
    controller = smtp_controller(
        # aiosmtpd counts only STARTTLS as TLS; this connection is TLS from the first byte.
        recorder, ssl_context=context, auth_required=True, auth_require_tls=False,
        authenticator=authenticator("alerts", SMTP_PASSWORD),
    )
    try:
        config = mail_config(controller.port, implicit_tls=True, username="alerts",
                             password=SMTP_PASSWORD, ca_file=str(cert))
        notifier(config).send(alert("resolve", resolved_at=NOW),
                              SendContext(now=NOW, notification_id=5, thread_ref="<t@x>"))
    finally:
        controller.stop()
    message = parsed(recorder)
    # The trigger's subject after "Re: ", so clients thread it; the state opens the body.
    assert message["Subject"] == f"Re: [hookwatch] deployment acme/sdxl: {alert().rule}"
    body = message.get_body(("plain",))
    assert body is not None and body.get_content().lstrip().startswith("[RESOLVED]")
    assert message["In-Reply-To"] == "<t@x>"


def test_4xx_is_temporary_and_5xx_permanent(plain: int, recorder: SmtpRecorder) -> None:
    recorder.refuse = ["451 4.3.0 Try again later", "554 5.7.1 Rejected as spam"]
    sender = notifier(mail_config(plain))
    with pytest.raises(NotifyError) as info:
        sender.send(alert(), SendContext(now=NOW))
    assert info.value.retryable and "451" in info.value.detail
    with pytest.raises(NotifyError) as info:
        sender.send(alert(), SendContext(now=NOW))
    assert not info.value.retryable and "554" in info.value.detail
    sender.send(alert(), SendContext(now=NOW))
    assert len(recorder.messages) == 1


def test_nobody_listening_is_temporary() -> None:
    with pytest.raises(NotifyError) as info:
        notifier(mail_config(free_port())).send(alert(), SendContext(now=NOW))
    assert info.value.retryable
    assert info.value.detail.startswith("cannot reach SMTP server 127.0.0.1")
