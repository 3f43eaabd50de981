"""Error fingerprints: error texts with their variable parts masked, so failures group."""

from __future__ import annotations

import re

# Order matters: wider patterns first, so a UUID is not eaten digit by digit.
_MASKS: tuple[tuple[re.Pattern[str], str], ...] = (
    (re.compile(r"[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}"),
     "<uuid>"),
    (re.compile(r"\b0x[0-9a-fA-F]+\b"), "<hex>"),
    (re.compile(r"\b(?=[0-9a-fA-F]*[a-fA-F])(?=[0-9a-fA-F]*[0-9])[0-9a-fA-F]{8,}\b"), "<hex>"),
    (re.compile(r"(?:[A-Za-z]:)?(?:/[\w.\-]+){2,}/?"), "<path>"),
    (re.compile(r"'[^'\n]{0,200}'"), "'<str>'"),
    (re.compile(r'"[^"\n]{0,200}"'), '"<str>"'),
    (re.compile(r"[-+]?\b\d+(?:\.\d+)?(?:[eE][-+]?\d+)?\b"), "<n>"),
)
MAX_LENGTH = 300


def fingerprint(error: str) -> str:
    """Mask numbers, hex ids, UUIDs, paths and quoted values; keep the first line's gist."""
    text = error.strip()
    for pattern, replacement in _MASKS:
        text = pattern.sub(replacement, text)
    text = re.sub(r"\s+", " ", text)
    return text[:MAX_LENGTH]
