"""Alert rules: the config's [[rules]] tables, checked, and the built-in defaults."""

from __future__ import annotations

from typing import Any


def default_rules() -> list[Any]:
    return []


def parse_rules(raw: Any, *, notifier_names: set[str], problems: list[str]) -> list[Any]:
    return []


def parse_inhibit(raw: Any, problems: list[str]) -> dict[str, Any]:
    return {}
