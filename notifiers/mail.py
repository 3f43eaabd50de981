"""The email channel: SMTP (plain, STARTTLS or implicit TLS, optional login), text + HTML parts."""

from __future__ import annotations

import contextlib
import email.policy
import hashlib
import smtplib
import socket
import ssl
import threading
import time
from email.message import EmailMessage
from email.utils import formatdate, make_msgid, parseaddr
from typing import Annotated, Any, Literal

from pydantic import BeforeValidator, Field, model_validator

from hookwatch.notifiers.base import DEFAULT_TIMEOUT, NotifyError, SendContext, SendResult, short
from hookwatch.notifiers.fields import (
    Bool,
    ChannelOptions,
    OptSecret,
    OptText,
    Port,
    Text,
    Timeout,
    one_or_many,
    problem,
)
from hookwatch.notifiers.message import AlertMessage
from hookwatch.notifiers.render import context, render

# Policy SMTP: CRLF line endings; header values holding CR or LF raise ValueError instead of
# starting a new header (header injection). Subjects are flattened before they get here anyway.
POLICY = email.policy.SMTP.clone(raise_on_defect=True)
_SUBJECT_MAX = 250


def _address(value: Any) -> Any:
    if isinstance(value, str) and _address_ok(value) and not any(ord(c) < 32 for c in value):
        return value
    raise problem("must be an email address")


def _sender(value: Any) -> Any:
    if isinstance(value, str) and value and not _address_ok(value):
        raise problem("must be an email address, e.g. hookwatch@example.com")
    return value


Address = Annotated[str, BeforeValidator(_address)]


class EmailOptions(ChannelOptions):
    """[notifiers.NAME] with type = "email"."""

    type: Literal["email"] = "email"
    smtp_host: Text
    # Default: 465 with implicit_tls, 587 with starttls, else 25 (filled in by _default_port).
    smtp_port: Port = 25
    starttls: Bool = False
    implicit_tls: Bool = False
    username: OptText = None
    password: OptSecret = None
    sender: Annotated[Text, BeforeValidator(_sender)] = Field(validation_alias="from")
    to: Annotated[tuple[Address, ...], BeforeValidator(one_or_many)]
    ca_file: OptText = None
    timeout: Timeout = DEFAULT_TIMEOUT

    @model_validator(mode="before")
    @classmethod
    def _default_port(cls, data: Any) -> Any:
        if isinstance(data, dict) and "smtp_port" not in data:
            port = 465 if data.get("implicit_tls") is True else (
                587 if data.get("starttls") is True else 25)
            data = {**data, "smtp_port": port}
        return data

    @model_validator(mode="after")
    def _pairs(self) -> EmailOptions:
        if self.starttls and self.implicit_tls:
            raise problem("cannot be combined with starttls; choose one", key="implicit_tls")
        if self.password is not None and not self.username:
            raise problem("is set but username is empty; set both or neither", key="password")
        if self.username and self.password is None:
            raise problem("is empty but username is set; set both or neither", key="password")
        return self

    def secrets(self) -> list[str]:
        return [self.password.get_secret_value()] if self.password else []


def _address_ok(value: str) -> bool:
    _name, addr = parseaddr(value)
    local, at, domain = addr.rpartition("@")
    return bool(at and local and ("." in domain or domain == "localhost")) and " " not in addr


def header_safe(text: str, limit: int = _SUBJECT_MAX) -> str:
    """One line without control characters: a CR/LF in a model name goes nowhere."""
    return short("".join(c if ord(c) >= 32 and ord(c) != 127 else " " for c in text), limit)


def subject(message: AlertMessage) -> str:
    """One subject per alert, whatever happens to it: mail clients thread by subject as well
    as by In-Reply-To (Gmail needs both), so the state ("FIRING", "RESOLVED") lives in the
    body's first line, and follow-ups read "Re: " like any reply."""
    if message.kind == "test":
        return f"[TEST] {message.summary}"
    base = f"[hookwatch] {message.scope} {message.scope_name}: {message.rule}"
    if message.group is not None:  # one subject for the group's whole thread
        base = f"[hookwatch] alert group {message.group.label}"
    return base if message.kind == "trigger" else f"Re: {base}"


def message_id(context: SendContext, sender: str, alert_key: str) -> str:
    """Stable per notification, so a retried send carries the same Message-ID (receivers dedupe)."""
    domain = parseaddr(sender)[1].rpartition("@")[2] or "hookwatch.invalid"
    if context.notification_id is None:
        return make_msgid("hookwatch-test", domain=domain)
    digest = hashlib.sha256(alert_key.encode()).hexdigest()[:12]
    return f"<hookwatch.{context.notification_id}.{digest}@{domain}>"


def build_email(
    options: EmailOptions, message: AlertMessage, send_context: SendContext
) -> EmailMessage:
    values = context(message)
    mail = EmailMessage(policy=POLICY)
    mail["Subject"] = header_safe(subject(message))
    mail["From"] = options.sender
    mail["To"] = ", ".join(options.to)
    mail["Date"] = formatdate(send_context.now, usegmt=True)
    mail["Message-ID"] = message_id(send_context, options.sender, message.alert_key)
    if send_context.thread_ref:
        # Mail clients thread the resolution under the trigger (RFC 5322 section 3.6.4).
        mail["In-Reply-To"] = header_safe(send_context.thread_ref, 500)
        mail["References"] = header_safe(send_context.thread_ref, 500)
    mail["X-Hookwatch-Alert"] = header_safe(message.alert_key, 200)
    mail["Auto-Submitted"] = "auto-generated"  # RFC 3834: no vacation auto-replies
    mail.set_content(render("email.txt.j2", message, values))
    mail.add_alternative(render("email.html.j2", message, values), subtype="html")
    return mail


class _Watchdog:
    """One deadline for a whole SMTP exchange: smtplib's timeout applies to each read, so a
    server answering a byte at a time would hold the channel. At the deadline (or on abort)
    the socket is shut down, which ends a blocked read at once."""

    def __init__(self) -> None:
        self.sockets: set[socket.socket] = set()
        self.lock = threading.Lock()
        self.aborted = False

    def watch(self, sock: socket.socket) -> None:
        with self.lock:
            self.sockets.add(sock)
        if self.aborted:
            self.fire()

    def fire(self) -> None:
        with self.lock:
            sockets, self.sockets = list(self.sockets), set()
        for sock in sockets:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)


def _client_class(base: type[smtplib.SMTP], watchdog: _Watchdog) -> Any:
    class Watched(base):  # type: ignore[valid-type,misc]
        def _get_socket(self, host: str, port: int, timeout: float) -> socket.socket:
            sock: socket.socket = super()._get_socket(host, port, timeout)
            watchdog.watch(sock)
            return sock

    return Watched


class EmailNotifier:
    min_interval = 0.0

    def __init__(self, name: str, options: EmailOptions) -> None:
        self.name = name
        self.options = options
        self._watchdog = _Watchdog()

    def destination(self) -> str:
        return f"smtp:{self.options.smtp_host}:{self.options.smtp_port}"

    def _tls(self) -> ssl.SSLContext:
        return ssl.create_default_context(cafile=self.options.ca_file)

    def send(self, message: AlertMessage, context: SendContext) -> SendResult | None:
        mail = build_email(self.options, message, context)
        o = self.options
        timer = threading.Timer(o.timeout, self._watchdog.fire)
        timer.daemon = True
        timer.start()
        started = time.monotonic()
        try:
            client: smtplib.SMTP
            if o.implicit_tls:
                client = _client_class(smtplib.SMTP_SSL, self._watchdog)(
                    o.smtp_host, o.smtp_port, timeout=o.timeout, context=self._tls()
                )
            else:
                client = _client_class(smtplib.SMTP, self._watchdog)(
                    o.smtp_host, o.smtp_port, timeout=o.timeout)
            with client:
                client.ehlo()
                if o.starttls:
                    client.starttls(context=self._tls())
                    client.ehlo()
                if o.username and o.password:
                    client.login(o.username, o.password.get_secret_value())
                client.send_message(mail, from_addr=parseaddr(o.sender)[1], to_addrs=list(o.to))
        except Exception as exc:
            if self._watchdog.aborted:
                raise NotifyError("the delivery worker is stopping", retryable=True) from None
            if time.monotonic() - started >= o.timeout:
                raise NotifyError(f"SMTP server {o.smtp_host} did not finish in time "
                                  f"({o.timeout:g} s for the whole exchange)",
                                  retryable=True) from None
            raise smtp_error(exc, o.smtp_host) from None
        finally:
            timer.cancel()
            self._watchdog.fire()  # forget this exchange's sockets (closed by now)
        # A partly refused recipient list still counts as sent: a retry would double the rest.
        return SendResult(external_ref=str(mail["Message-ID"]))

    def abort(self) -> None:
        self._watchdog.aborted = True
        self._watchdog.fire()

    def close(self) -> None:
        return None


def _reply(code: int, text: bytes | str) -> str:
    body = text.decode("utf-8", "replace") if isinstance(text, bytes) else str(text)
    return f"{code} {short(body, 200)}"


def smtp_error(exc: Exception, host: str) -> NotifyError:
    """SMTP reply 4xx: try again later; 5xx: never (RFC 5321 section 4.2.1)."""
    if isinstance(exc, smtplib.SMTPAuthenticationError):
        return NotifyError(
            f"SMTP login refused: {_reply(exc.smtp_code, exc.smtp_error)}", retryable=False
        )
    if isinstance(exc, smtplib.SMTPRecipientsRefused):
        codes = [code for code, _ in exc.recipients.values()]
        retry = any(400 <= code < 500 for code in codes)
        shown = "; ".join(_reply(c, t) for c, t in list(exc.recipients.values())[:3])
        return NotifyError(f"SMTP refused every recipient: {shown}", retryable=retry)
    if isinstance(exc, smtplib.SMTPResponseException):
        return NotifyError(
            f"SMTP error: {_reply(exc.smtp_code, exc.smtp_error)}",
            retryable=400 <= exc.smtp_code < 500,
        )
    if isinstance(exc, smtplib.SMTPNotSupportedError):
        return NotifyError(f"SMTP server {host} does not support it: {short(str(exc))}",
                           retryable=False)
    if isinstance(exc, ssl.SSLCertVerificationError):
        return NotifyError(
            f"TLS certificate of {host} not trusted: {exc.verify_message}"
            " (set ca_file for a private CA)",
            retryable=False,
        )
    if isinstance(exc, ssl.SSLEOFError | ssl.SSLZeroReturnError):
        return NotifyError(f"TLS connection to {host} closed early", retryable=True)
    if isinstance(exc, ssl.SSLError):
        # A TLS mismatch (implicit TLS against a plain port) does not fix itself.
        return NotifyError(f"TLS error with {host}: {short(str(exc))}", retryable=False)
    if isinstance(exc, socket.timeout | TimeoutError):
        return NotifyError(f"SMTP server {host} timed out", retryable=True)
    if isinstance(exc, smtplib.SMTPServerDisconnected):
        return NotifyError(f"SMTP server {host} closed the connection", retryable=True)
    if isinstance(exc, OSError):
        return NotifyError(f"cannot reach SMTP server {host}: {short(str(exc))}", retryable=True)
    return NotifyError(f"{type(exc).__name__}: {short(str(exc))}", retryable=True)
