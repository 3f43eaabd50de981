"""Latency rules: a percentile of queue, predict or total time over a window, judged from the
scope's histogram (storage.percentiles, which bounds the estimate's error)."""

from __future__ import annotations

from collections.abc import Callable, Iterable

from hookwatch.alerts.duration import format_duration
from hookwatch.alerts.rules import LatencyRule, Rule
from hookwatch.storage.percentiles import METRICS, RELATIVE_ERROR, Histogram, quantile

LatencyKey = tuple[str, float]  # metric (storage.rollups.LATENCY_METRICS), window
Judged = tuple[bool | None, float | None, Callable[[], str]]
BOUND = f"±{RELATIVE_ERROR:.0%}"
"""How far off a bucketed percentile may be, as messages print it."""


def latency_key(rule: LatencyRule) -> LatencyKey:
    return METRICS[rule.metric], rule.window


def wants(rules: Iterable[Rule]) -> set[LatencyKey]:
    """The (metric, window) histograms the latency rules read."""
    return {latency_key(rule) for rule in rules if isinstance(rule, LatencyRule)}


def seconds(value: float) -> str:
    """92 s, 4.5 s, 350 ms: the precision a bucketed estimate deserves."""
    if value >= 10:
        return f"{value:,.0f} s"
    if value >= 1:
        return f"{value:.1f} s"
    return f"{value * 1000:.0f} ms"


def judge_latency(rule: LatencyRule, histogram: Histogram | None) -> Judged:
    """Breach while the percentile is over the threshold, given min_predictions samples."""
    n = sum(histogram.values()) if histogram else 0
    # The text is built only when it is stored (most instances are quiet and never are).
    def label() -> str:
        return f"{rule.metric.replace('_', ' ')} p{rule.percentile:g}"

    def seen() -> str:
        return f"{n:,} prediction{'s' if n != 1 else ''}"

    if not histogram or n < rule.min_predictions or n == 0:
        return None, None, lambda: (f"{label()}: {seen()} over {format_duration(rule.window)}"
                                    f", under {rule.min_predictions}, no verdict")
    value = quantile(histogram, rule.percentile / 100.0)
    assert value is not None  # n > 0
    return value > rule.threshold, value, lambda: (
        f"{label()} {seconds(value)} (threshold {seconds(rule.threshold)}) over "
        f"{format_duration(rule.window)}, {seen()} (bucketed estimate, within {BOUND})")
