"""Typed reads of one [notifiers.NAME] table: a problem line per bad key, never echoing secrets."""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit

from pydantic import SecretStr


def _has_control(value: str) -> bool:
    return any(ord(c) < 32 or ord(c) == 127 for c in value)


class Table:
    """Reads keys from a raw TOML table; every read key is marked known for `finish()`."""

    def __init__(self, where: str, raw: dict[str, Any], problems: list[str]) -> None:
        self.where = where
        self.raw = raw
        self.problems = problems
        self.known: set[str] = set()
        self.ok = True

    def problem(self, key: str, sentence: str) -> None:
        """One line per key: a key already reported (say, a missing ${VAR}) is not repeated."""
        self.ok = False
        prefix = f"{self.where}.{key}:"
        if not any(p.startswith(prefix) for p in self.problems):
            self.problems.append(f"{prefix} {sentence}")

    def string(self, key: str, *, required: bool = False, default: str | None = None) -> str | None:
        self.known.add(key)
        value = self.raw.get(key)
        if value is None or value == "":
            if required:
                self.problem(key, "is required")
            return default
        if not isinstance(value, str):
            self.problem(key, "must be a string")
            return default
        if _has_control(value):
            self.problem(key, "must not contain control characters (line breaks, tabs)")
            return default
        return value

    def secret(self, key: str, *, required: bool = False) -> SecretStr | None:
        """Like string(), but problems never quote the value and the result never prints."""
        self.known.add(key)
        value = self.raw.get(key)
        if value is None or value == "":
            if required:
                self.problem(key, "is required (an empty value counts as missing)")
            return None
        if not isinstance(value, str):
            self.problem(key, "must be a string")
            return None
        if _has_control(value) or value != value.strip():
            self.problem(key, "must not contain spaces or control characters at either end")
            return None
        return SecretStr(value)

    def url(self, key: str, *, required: bool = False, default: str | None = None) -> str | None:
        """An http(s) URL with a host. Problems never quote it: URLs often carry tokens."""
        self.known.add(key)
        value = self.raw.get(key)
        if value is None or value == "":
            if required:
                self.problem(key, "is required")
            return default
        if not isinstance(value, str) or not url_ok(value):
            self.problem(key, "must be an http:// or https:// URL with a host")
            return default
        return value

    def boolean(self, key: str, *, default: bool) -> bool:
        self.known.add(key)
        value = self.raw.get(key, default)
        if not isinstance(value, bool):
            self.problem(key, "must be true or false")
            return default
        return value

    def integer(self, key: str, *, default: int, low: int, high: int) -> int:
        self.known.add(key)
        value = self.raw.get(key, default)
        if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
            self.problem(key, f"must be a whole number from {low} to {high}")
            return default
        return value

    def number(self, key: str, *, default: float, low: float, high: float) -> float:
        self.known.add(key)
        value = self.raw.get(key, default)
        number = isinstance(value, int | float) and not isinstance(value, bool)
        if not number or not low <= value <= high:
            self.problem(key, f"must be a number from {low:g} to {high:g}")
            return default
        return float(value)

    def strings(self, key: str, *, required: bool = False) -> list[str]:
        """A string or a list of strings."""
        self.known.add(key)
        value = self.raw.get(key)
        if value is None or value == "" or value == []:
            if required:
                self.problem(key, "is required")
            return []
        items = [value] if isinstance(value, str) else value
        if not isinstance(items, list) or not all(isinstance(v, str) for v in items):
            self.problem(key, "must be a string or a list of strings")
            return []
        return list(items)

    def finish(self) -> None:
        """One problem per key nobody read: a typo must not silently do nothing."""
        for key in self.raw:
            if key not in self.known:
                self.problem(key, f"unknown key (expected one of {sorted(self.known)})")


def url_ok(value: str) -> bool:
    try:
        parts = urlsplit(value)
        port = parts.port  # raises ValueError on a bad port
    except ValueError:
        return False
    if port == 0:
        return False
    return (
        parts.scheme in ("http", "https")
        and bool(parts.hostname)
        and not any(ord(c) <= 32 or ord(c) == 127 for c in value)
    )
