"""The notifier registry: channel type name to its options model and class, and building one.

Adding a channel type (say "ntfy"): write `notifiers/ntfy.py` with `NtfyOptions(ChannelOptions)`
(`type: Literal["ntfy"] = "ntfy"` plus its keys, secrets as SecretStr) beside `NtfyNotifier`,
add `NtfyOptions` to the `NotifierOptions` union below, and one line to `NOTIFIERS`.
check-config, the JSON Schema (`hookwatch config-schema`) and the problem lines follow.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Annotated, Any

from pydantic import Field

from hookwatch.notifiers.base import Notifier
from hookwatch.notifiers.discord import DiscordNotifier, DiscordOptions
from hookwatch.notifiers.fields import ChannelOptions
from hookwatch.notifiers.mail import EmailNotifier, EmailOptions
from hookwatch.notifiers.ntfy import NtfyNotifier, NtfyOptions
from hookwatch.notifiers.pagerduty import PagerDutyNotifier, PagerDutyOptions
from hookwatch.notifiers.redact import protect_logs
from hookwatch.notifiers.slack import SlackNotifier, SlackOptions
from hookwatch.notifiers.teams import TeamsNotifier, TeamsOptions
from hookwatch.notifiers.telegram import TelegramNotifier, TelegramOptions
from hookwatch.notifiers.webhook import WebhookNotifier, WebhookOptions

# One [notifiers.NAME] table, chosen by its `type`.
AnyOptions = (EmailOptions | SlackOptions | PagerDutyOptions | WebhookOptions | DiscordOptions
              | TeamsOptions | TelegramOptions | NtfyOptions)
NotifierOptions = Annotated[AnyOptions, Field(discriminator="type")]


@dataclass(frozen=True)
class Channel:
    options: type[ChannelOptions]
    notifier: Callable[[str, Any], Notifier]


# The explicit registry: a new channel is one module, one union member above, one line here.
NOTIFIERS: dict[str, Channel] = {
    "email": Channel(EmailOptions, EmailNotifier),
    "slack": Channel(SlackOptions, SlackNotifier),
    "pagerduty": Channel(PagerDutyOptions, PagerDutyNotifier),
    "webhook": Channel(WebhookOptions, WebhookNotifier),
    "discord": Channel(DiscordOptions, DiscordNotifier),
    "teams": Channel(TeamsOptions, TeamsNotifier),
    "telegram": Channel(TelegramOptions, TelegramNotifier),
    "ntfy": Channel(NtfyOptions, NtfyNotifier),
}


@dataclass(frozen=True)
class NotifierConfig:
    """One [notifiers.NAME] table, checked. Secrets are SecretStr inside `options`."""

    name: str
    options: AnyOptions

    @property
    def type(self) -> str:
        return self.options.type

    @property
    def send_resolved(self) -> bool:
        return self.options.send_resolved

    @property
    def fallback(self) -> str | None:
        """Where its notifications go while it keeps failing (notifiers.health)."""
        return self.options.fallback

    def secrets(self) -> list[str]:
        return self.options.secrets()


def fallback_problems(fallbacks: Mapping[str, str | None]) -> list[tuple[str, str]]:
    """(notifier, problem) for each `fallback` that names no other notifier, or whose chain
    comes back to it: a notification must always end somewhere."""
    found: list[tuple[str, str]] = []
    for name, target in fallbacks.items():
        if target is None:
            continue
        if target == name:
            found.append((name, "a notifier cannot be its own fallback"))
        elif target not in fallbacks:
            known = ", ".join(sorted(set(fallbacks) - {name})) or "none"
            found.append((name, f"unknown notifier {target!r} (known: {known})"))
        else:
            seen: list[str] = [name]
            step: str | None = target
            while step is not None and step in fallbacks and step not in seen:
                seen.append(step)
                step = fallbacks[step]
            if step == name:
                found.append((name, f"fallbacks form a cycle: {' -> '.join([*seen, name])}"))
    return found


def build(config: NotifierConfig) -> Notifier:
    """A ready notifier for one config entry; its secrets are registered for log redaction."""
    protect_logs(config.secrets())
    return NOTIFIERS[config.type].notifier(config.name, config.options)
