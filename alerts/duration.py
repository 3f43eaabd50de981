"""Durations as the config writes them ("45s", "10m", "1h30m", "2d", "500ms"), and their type."""

from __future__ import annotations

import re
from typing import Annotated, Any

from pydantic import (
    AfterValidator,
    BeforeValidator,
    PlainSerializer,
    ValidationInfo,
    WithJsonSchema,
)

# Prometheus' duration syntax (units largest first, each at most once):
# https://prometheus.io/docs/prometheus/latest/configuration/configuration/#duration
_UNITS = (("w", 604800.0), ("d", 86400.0), ("h", 3600.0), ("m", 60.0), ("s", 1.0),
          ("ms", 0.001))
_DURATION = re.compile(
    r"^(?:(?P<w>\d+)w)?(?:(?P<d>\d+)d)?(?:(?P<h>\d+)h)?(?:(?P<m>\d+)m(?!s))?"
    r"(?:(?P<s>\d+)s)?(?:(?P<ms>\d+)ms)?$"
)


class DurationError(ValueError):
    pass


def parse_duration(text: object) -> float:
    """Seconds; "0" is zero. Raises DurationError with a sentence saying what is accepted."""
    hint = 'a duration string such as "45s", "10m", "1h30m" or "2d"'
    if not isinstance(text, str):
        raise DurationError(f"must be {hint}, not {type(text).__name__} {text!r}")
    if text == "0":
        return 0.0
    match = _DURATION.match(text)
    if not text or match is None or not any(match.groupdict().values()):
        raise DurationError(f"bad duration {text!r}: must be {hint}")
    return sum(
        int(value) * dict(_UNITS)[unit]
        for unit, value in match.groupdict().items()
        if value is not None
    )


def format_duration(seconds: float) -> str:
    """The shortest exact form: 5400 -> "1h30m", 0 -> "0s"."""
    if seconds <= 0:
        return "0s"
    rest = round(seconds * 1000)
    parts: list[str] = []
    for unit, size in _UNITS:
        step = round(size * 1000)
        if rest >= step:
            parts.append(f"{rest // step}{unit}")
            rest %= step
    return "".join(parts)


def _seconds(value: Any, info: ValidationInfo) -> float:
    # Python code may pass seconds; the config file (validated with a context) must say "10m",
    # so that `for = 60` is not silently read as a minute.
    if info.context is None and isinstance(value, int | float) and not isinstance(value, bool):
        return float(value)
    return parse_duration(value)


def _positive(seconds: float) -> float:
    if seconds <= 0:
        raise ValueError("must be longer than zero")
    return seconds


PATTERN = r"^(0|(\d+(w|d|h|m|s|ms))+)$"
_SCHEMA = {
    "type": "string",
    "pattern": PATTERN,
    "description": 'a duration such as "45s", "10m", "1h30m" or "2d"',
    "examples": ["10m"],
}
# Seconds, written in the file as a Prometheus-style duration string.
# In JSON (a dump, the schema's defaults) it is the string again.
Duration = Annotated[float, BeforeValidator(_seconds), WithJsonSchema(_SCHEMA),
                     PlainSerializer(format_duration, return_type=str, when_used="json")]
PositiveDuration = Annotated[Duration, AfterValidator(_positive)]


def schema_defaults(schema: dict[str, Any]) -> None:
    """For `json_schema_extra`: a duration's default in the schema as the file writes it."""
    for prop in schema.get("properties", {}).values():
        default = prop.get("default")
        if prop.get("pattern") == PATTERN and isinstance(default, int | float):
            prop["default"] = format_duration(default)
