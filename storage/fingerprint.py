"""Error fingerprints: error texts with their variable parts masked, so failures group."""

from __future__ import annotations

import re

# Order matters: wider patterns first, so a UUID or a timestamp is not eaten digit by digit.
_MASKS: tuple[tuple[re.Pattern[str], str], ...] = (
    (re.compile(r"[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}"),
     "<uuid>"),
    # ISO 8601 / RFC 3339 date-times, as loggers and servers print them.
    (re.compile(r"\b\d{4}-\d{2}-\d{2}[T ]\d{2}:\d{2}(?::\d{2}(?:[.,]\d+)?)?"
                r"(?:Z|[+-]\d{2}:?\d{2})?"), "<time>"),
    (re.compile(r"\b[A-Za-z][A-Za-z0-9+.\-]*://[^\s'\"<>]+"), "<url>"),
    (re.compile(r"\b0x[0-9a-fA-F]+\b"), "<hex>"),
    (re.compile(r"\b(?=[0-9a-fA-F]*[a-fA-F])(?=[0-9a-fA-F]*[0-9])[0-9a-fA-F]{8,}\b"), "<hex>"),
    (re.compile(r"(?:[A-Za-z]:)?(?:/[\w.\-]+){2,}/?"), "<path>"),
    (re.compile(r"\b[A-Za-z]:\\(?:[\w.\-]+\\)*[\w.\-]+"), "<path>"),
    (re.compile(r"'[^'\n]{0,200}'"), "'<str>'"),
    (re.compile(r'"[^"\n]{0,200}"'), '"<str>"'),
    # A number not glued to a word before it ("layer3", "sm_80" stay: they name a thing), with
    # its decimals, exponent or further dots (versions, IPv4); a unit after it stays: "30s".
    (re.compile(r"(?<![\w.])[-+]?\d+(?:\.\d+)*(?:[eE][-+]?\d+)?(?![\d.])"), "<n>"),
)
_TRACEBACK = "Traceback (most recent call last)"
MAX_LENGTH = 300


def _gist(error: str) -> str:
    """A Python traceback groups by its exception line (the last); frames and line numbers
    would split one failure into many, and a long one would be cut before its exception."""
    if _TRACEBACK not in error:
        return error
    lines = [line for line in error.strip().splitlines() if line.strip()]
    return lines[-1] if lines else error


def fingerprint(error: str) -> str:
    """Mask numbers, hex ids, UUIDs, times, URLs, paths and quoted values."""
    text = _gist(error.strip())
    for pattern, replacement in _MASKS:
        text = pattern.sub(replacement, text)
    text = re.sub(r"\s+", " ", text).strip()
    return text[:MAX_LENGTH]
