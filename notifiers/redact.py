"""Keeping notifier secrets (webhook URLs, routing keys, passwords, tokens) out of text and logs."""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterable
from urllib.parse import parse_qsl, quote, quote_plus, urlsplit

REDACTED = "[redacted]"
_MIN_LEN = 6  # shorter values would redact ordinary words; config refuses nothing this short


def variants(secret: str) -> set[str]:
    """The forms a secret takes in exception text: as is, and URL-encoded."""
    return {v for v in (secret, quote(secret, safe=""), quote_plus(secret)) if len(v) >= _MIN_LEN}


def url_secrets(url: str) -> list[str]:
    """A URL that is a credential (Discord, Teams, ntfy topics) and the parts errors may quote
    alone: its path, its query, each longer query value (a Teams `sig`) and any password."""
    parts = urlsplit(url)
    values = [url]
    if parts.path.strip("/"):
        values.append(parts.path + (f"?{parts.query}" if parts.query else ""))
        values.append(parts.path)
    if parts.query:
        values.append(parts.query)
        values += [v for _k, v in parse_qsl(parts.query) if len(v) >= _MIN_LEN]
    if parts.password:
        values.append(parts.password)
    return values


class Redactor:
    def __init__(self, secrets: Iterable[str] = ()) -> None:
        self._lock = threading.Lock()
        self._values: tuple[str, ...] = ()
        self.add(secrets)

    def add(self, secrets: Iterable[str]) -> None:
        new: set[str] = set()
        for secret in secrets:
            if secret:
                new |= variants(secret)
        with self._lock:
            # Longest first, so a URL goes before the path inside it.
            self._values = tuple(sorted(set(self._values) | new, key=len, reverse=True))

    def __call__(self, text: str) -> str:
        for value in self._values:
            if value in text:
                text = text.replace(value, REDACTED)
        return text


class RedactingFilter(logging.Filter):
    """Rewrites a record's message when it holds a secret (e.g. a URL in an HTTP client's log)."""

    def __init__(self, redactor: Redactor) -> None:
        super().__init__()
        self.redactor = redactor

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            message = record.getMessage()
        except Exception:  # a malformed record is the logging module's problem, not ours
            return True
        clean = self.redactor(message)
        if clean != message:
            record.msg = clean
            record.args = None
        return True


# One process-wide redactor for log records, fed by every notifier that is built.
LOG_REDACTOR = Redactor()
# Loggers that may print a request URL: httpx logs "HTTP Request: POST <url>" at INFO;
# slack-sdk's clients log to the logger we hand them (notifiers.slack.SDK_LOGGER).
_LOGGERS = ("httpx", "hookwatch.notifiers", "hookwatch.notifiers.slack_sdk")
_installed = False
_install_lock = threading.Lock()


def protect_logs(secrets: Iterable[str]) -> None:
    """Register secrets for redaction in the log records of the loggers that might carry them."""
    global _installed
    LOG_REDACTOR.add(secrets)
    with _install_lock:
        if not _installed:
            log_filter = RedactingFilter(LOG_REDACTOR)
            for name in _LOGGERS:
                logging.getLogger(name).addFilter(log_filter)
            _installed = True
