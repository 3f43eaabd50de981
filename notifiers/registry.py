"""The notifier registry: channel type name to class, and the config's [notifiers.*] parser."""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from hookwatch.notifiers.base import Notifier
from hookwatch.notifiers.fields import Table
from hookwatch.notifiers.mail import EmailNotifier, EmailOptions, parse_email
from hookwatch.notifiers.pagerduty import PagerDutyNotifier, PagerDutyOptions, parse_pagerduty
from hookwatch.notifiers.redact import protect_logs
from hookwatch.notifiers.slack import SlackNotifier, SlackOptions, parse_slack
from hookwatch.notifiers.webhook import WebhookNotifier, WebhookOptions, parse_webhook

Options = EmailOptions | SlackOptions | PagerDutyOptions | WebhookOptions

# The explicit registry: a new channel is one line here, one module, one parser.
NOTIFIERS: dict[str, Any] = {
    "email": EmailNotifier,
    "slack": SlackNotifier,
    "pagerduty": PagerDutyNotifier,
    "webhook": WebhookNotifier,
}
PARSERS: dict[str, Callable[[Table], Options | None]] = {
    "email": parse_email,
    "slack": parse_slack,
    "pagerduty": parse_pagerduty,
    "webhook": parse_webhook,
}
_NAME = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.-]{0,99}$")


@dataclass(frozen=True)
class NotifierConfig:
    """One [notifiers.NAME] table, checked. Secrets are SecretStr inside `options`."""

    name: str
    type: str
    options: Options
    send_resolved: bool = True

    def secrets(self) -> list[str]:
        return self.options.secrets()


def parse_notifiers(raw: Any, problems: list[str]) -> dict[str, NotifierConfig]:
    """Check every [notifiers.NAME] table; one line per problem, none quoting a secret."""
    if not isinstance(raw, dict):
        problems.append("notifiers: must be a table of [notifiers.NAME] tables")
        return {}
    result: dict[str, NotifierConfig] = {}
    for name, table_raw in raw.items():
        where = f"notifiers.{name}"
        if not _NAME.match(name):
            problems.append(f"{where}: a notifier name is 1-100 letters, digits, '_', '-' or '.'")
            continue
        if not isinstance(table_raw, dict):
            problems.append(f"{where}: must be a table with a type")
            continue
        table = Table(where, table_raw, problems)
        kind = table.string("type", required=True)
        send_resolved = table.boolean("send_resolved", default=True)
        if kind is None:
            continue
        parser = PARSERS.get(kind)
        if parser is None:
            table.problem("type", f"must be one of {sorted(NOTIFIERS)}")
            continue
        options = parser(table)
        table.finish()
        if options is None or not table.ok:
            continue
        result[name] = NotifierConfig(name, kind, options, send_resolved)
    return result


def build(config: NotifierConfig) -> Notifier:
    """A ready notifier for one config entry; its secrets are registered for log redaction."""
    protect_logs(config.secrets())
    notifier: Notifier = NOTIFIERS[config.type](config.name, config.options)
    return notifier
