"""Every scope's billed seconds (1 h, 24 h) and hourly predict p95 (24 h), read in bulk for the
page: the closed buckets kept between refreshes, the open ones read on each."""

from __future__ import annotations

import threading
from collections.abc import Sequence
from dataclasses import dataclass

from sqlalchemy import Connection, text

from hookwatch.storage import packed
from hookwatch.storage.percentiles import quantile
from hookwatch.storage.rates import ScopeKey
from hookwatch.storage.usage import Usage, UsageCache
from hookwatch.storage.window_cache import ClosedSeries, bucket_count

DAY_SPAN = 86400
HOURS = bucket_count(3600, DAY_SPAN)  # 25, as dashboard.readings' error series
SPARK_HOURS = 24
NO_HOURS: tuple[None, ...] = (None,) * HOURS
HourBins = dict[ScopeKey, dict[int, dict[int, int]]]  # scope -> hour index -> bin -> count


@dataclass(frozen=True, slots=True)
class ScopeUsage:
    hour: Usage
    day: Usage
    predict_p95: Sequence[float | None] = NO_HOURS  # by hour, oldest first

    @property
    def spark(self) -> Sequence[float | None]:
        return self.predict_p95[-SPARK_HOURS:]


def _hour_rows(conn: Connection, lo: int, hi: float) -> HourBins:
    found: HourBins = {}
    for scope, name, start, latency in conn.execute(
        text("SELECT scope, name, start, latency FROM outcome_buckets WHERE resolution = "
             "3600 AND latency IS NOT NULL AND start >= :lo AND start < :hi"),
        {"lo": lo, "hi": hi},
    ):
        histogram = {index: int(count) for index, count in packed.bins(latency, "predict")}
        if histogram:
            found.setdefault((scope, name), {})[(int(start) - lo) // 3600] = histogram
    return found


Series = dict[ScopeKey, tuple[float | None, ...]]


def _load_p95(conn: Connection, lo: int, hi: int) -> Series:
    """The closed hours' p95s, computed once per closed hour (not per refresh)."""
    series: Series = {}
    for key, hours in _hour_rows(conn, lo, hi).items():
        values: list[float | None] = [None] * HOURS
        for index, histogram in hours.items():
            if 0 <= index < HOURS:
                values[index] = quantile(histogram, 0.95)
        series[key] = tuple(values)
    return series


class UsageReadings:
    """One per app, beside dashboard.readings.Readings; safe across request threads."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.usage = UsageCache()
        self.hours = ClosedSeries(resolution=3600, span=DAY_SPAN, load=_load_p95)

    def read(self, conn: Connection, *, now: float) -> dict[ScopeKey, ScopeUsage]:
        with self.lock:
            used = self.usage.usage(conn, now=now, windows=(3600.0, float(DAY_SPAN)))
            closed = self.hours.closed(conn, now)
            lo, hi = self.hours.bounds(now)
        series = dict(closed)
        for key, hours in _hour_rows(conn, hi, now + 1).items():
            values = list(series.get(key, NO_HOURS))
            for start_index, histogram in hours.items():
                index = start_index + (hi - lo) // 3600
                if 0 <= index < HOURS:
                    values[index] = quantile(histogram, 0.95)
            series[key] = tuple(values)
        hour, day = used[3600.0], used[float(DAY_SPAN)]
        empty = Usage()
        keys = set(hour) | set(day) | set(series)
        return {key: ScopeUsage(hour.get(key, empty), day.get(key, empty),
                                series.get(key, NO_HOURS)) for key in keys}


def spend(usage: ScopeUsage | None, price: float | None, window: str) -> float | None:
    """Dollars over "1h" or "24h", or a 30-day "month" at the last 24 h's rate; None for a
    scope with no hardware in [pricing.scopes] (never a guess)."""
    if price is None:
        return None
    if usage is None:
        return 0.0
    if window == "1h":
        return usage.hour.seconds * price
    day = usage.day.seconds * price
    return day * 30 if window == "month" else day
