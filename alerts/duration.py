"""Durations as the config writes them: "45s", "10m", "1h30m", "2d", "500ms"."""

from __future__ import annotations

import re

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
