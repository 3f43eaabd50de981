"""Silences: time-boxed matchers (rule glob, scope, name glob) that mute notifications."""

from __future__ import annotations

from collections.abc import Iterable
from fnmatch import fnmatchcase
from typing import Protocol


class SilenceLike(Protocol):
    id: int | None
    rule: str
    scope: str
    name: str
    starts_at: float
    ends_at: float


def is_active(silence: SilenceLike, now: float) -> bool:
    """From starts_at (inclusive) until ends_at (exclusive); expiring sets ends_at to now."""
    return silence.starts_at <= now < silence.ends_at


def matches(silence: SilenceLike, *, rule: str, scope: str, name: str) -> bool:
    return (
        fnmatchcase(rule, silence.rule)
        and silence.scope in ("*", scope)
        and fnmatchcase(name, silence.name)
    )


def silenced_by(
    silences: Iterable[SilenceLike], *, rule: str, scope: str, name: str, now: float
) -> SilenceLike | None:
    """The first active silence matching the alert instance, if any."""
    for silence in silences:
        if is_active(silence, now) and matches(silence, rule=rule, scope=scope, name=name):
            return silence
    return None
