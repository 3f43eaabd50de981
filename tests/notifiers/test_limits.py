"""Cutting text to a channel's limits: UTF-16 lengths, clean cuts, the most items that fit."""

from __future__ import annotations

import random

from hookwatch.notifiers.limits import cut, cut_bytes, most_that_fit, units


def test_units_count_utf16() -> None:
    assert units("abc") == 3
    assert units("é") == 1
    assert units("🔴") == 2  # outside the BMP: a surrogate pair


def test_cut_respects_the_limit_and_never_halves_an_entity() -> None:
    rng = random.Random(7)
    alphabet = ["a", " ", "é", "🔴", "&amp;", "&#39;", "<", "\n"]
    for _ in range(500):
        text = "".join(rng.choice(alphabet) for _ in range(rng.randint(0, 80)))
        limit = rng.randint(0, 60)
        out = cut(text, limit)
        assert units(out) <= limit
        if units(text.strip()) <= limit:
            assert out == text.strip()
        else:
            assert limit == 0 or out.endswith("…")
            head = out.removesuffix("…")
            assert not head.endswith(("&", "&a", "&am", "&amp", "&#", "&#3", "&#39"))


def test_cut_bytes() -> None:
    assert cut_bytes("ééé", 6) == "ééé"
    out = cut_bytes("é" * 10, 9)
    assert len(out.encode()) <= 9 and out.endswith("…")
    assert cut_bytes("🔴🔴🔴", 8) == "🔴…"


def test_most_that_fit_is_the_linear_answer() -> None:
    rng = random.Random(3)
    for _ in range(300):
        total = rng.randint(0, 250)
        threshold = rng.randint(0, total + 5)
        calls: list[int] = []

        def fits(n: int, threshold: int = threshold, calls: list[int] = calls) -> bool:
            calls.append(n)
            return n <= threshold

        assert most_that_fit(total, fits) == min(threshold, total)
        assert len(calls) <= 10  # a binary search: 200 items cost 9 renders, not 200
