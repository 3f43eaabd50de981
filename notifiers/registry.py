"""The notifier registry: channel type name to class, and the config's [notifiers.*] parser."""

from __future__ import annotations

from typing import Any


def parse_notifiers(raw: Any, problems: list[str]) -> dict[str, Any]:
    return {}
