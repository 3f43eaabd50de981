"""Fitting text into a channel's size limits: UTF-16 lengths, clean cuts, how many items fit."""

from __future__ import annotations

import re
from collections.abc import Callable

ELLIPSIS = "…"
# Discord and Telegram count message length in UTF-16 code units (an emoji outside the BMP is
# two); counting that way never undercounts, whichever of the two a vendor means.
_ENTITY_TAIL = re.compile(r"&[#A-Za-z0-9]{0,8}$")


def units(text: str) -> int:
    """Length in UTF-16 code units."""
    return len(text.encode("utf-16-le")) // 2


def cut(text: str, limit: int) -> str:
    """At most `limit` UTF-16 units (an emoji counts two); a cut ends in '…' and never leaves
    half an &entity; behind."""
    text = text.strip()
    if units(text) <= limit:
        return text
    if limit <= 0:
        return ""
    budget = limit - 1  # the ellipsis is one unit
    out: list[str] = []
    used = 0
    for char in text:
        size = 2 if ord(char) > 0xFFFF else 1
        if used + size > budget:
            break
        out.append(char)
        used += size
    return _ENTITY_TAIL.sub("", "".join(out)).rstrip() + ELLIPSIS


def cut_bytes(text: str, limit: int) -> str:
    """At most `limit` UTF-8 bytes, cut on a character boundary, ending in '…' when cut."""
    data = text.encode()
    if len(data) <= limit:
        return text
    room = max(limit - len(ELLIPSIS.encode()), 0)
    return data[:room].decode("utf-8", "ignore").rstrip() + ELLIPSIS


def most_that_fit(total: int, fits: Callable[[int], bool]) -> int:
    """The largest n in 0..total with fits(n), for a `fits` that is true up to some n and
    false after (binary search: 200 top errors cost 8 renders, not 200)."""
    if fits(total):
        return total
    low, high = 0, total  # fits(low) is assumed, fits(high) is known false
    while high - low > 1:
        middle = (low + high) // 2
        if fits(middle):
            low = middle
        else:
            high = middle
    return low
