"""Bulk reads of the time buckets for every scope at once: windowed counts, percentiles, history.

A handful of set-based statements per page, whatever the number of scopes, and never a read of
raw events: the cost grows with scopes and windows only (DESIGN.md, Storage). Closed buckets
come from the caches in storage.window_cache; only the open ones are read on every refresh.
"""

from __future__ import annotations

import threading
from collections import defaultdict
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import Connection, text

from hookwatch.dashboard.svg import Day
from hookwatch.dashboard.usage import ScopeUsage, UsageReadings
from hookwatch.storage import packed
from hookwatch.storage.rates import OUTCOME_COLUMNS, Counts, ScopeKey
from hookwatch.storage.rollups import bin_value
from hookwatch.storage.window_cache import ClosedSeries, SlidingSums, Vector, bucket_count

WINDOWS = ("5m", "1h", "24h")
SPARK_HOURS = 24
DAY_SPAN = 86400
HOURS = bucket_count(3600, DAY_SPAN)  # 25: the 24 h window overlaps 25 hourly buckets
HISTORY_DAYS = 90
HISTORY_SPAN = (HISTORY_DAYS - 1) * 86400  # today and the 89 days before
LATENCY_WINDOW = 3600
"""Percentiles cover the last hour, read from minute buckets."""

_NONE = Counts()
NO_HOURS: tuple[None, ...] = (None,) * HOURS
NO_DAYS: tuple[None, ...] = (None,) * HISTORY_DAYS
Latency = tuple[float | None, float | None, float | None, float | None]
NO_LATENCY: Latency = (None, None, None, None)


@dataclass(slots=True)
class ScopeReading:
    """What the buckets say about one scope. Built for 1,000 scopes per refresh: kept lean."""

    scope: str
    name: str
    windows: dict[str, Counts] = field(default_factory=dict)
    hourly: Sequence[float | None] = NO_HOURS  # hourly error rates of the 24 h window
    days_closed: Sequence[Day | None] = NO_DAYS  # 90 days, oldest first, the cache's tuple
    days_live: dict[int, Day] = field(default_factory=dict)  # index -> today (and, in the
    # grace seconds after midnight, yesterday), read live
    latency: Latency = NO_LATENCY  # predict p50, p95, queue p50, p95 (seconds)
    usage: ScopeUsage | None = None  # billed seconds, hourly predict p95 (dashboard.usage)
    price: float | None = None  # $/s of its hardware; None: not in [pricing.scopes]

    @property
    def daily(self) -> list[Day | None]:
        """The 90 days, oldest first, closed and live together."""
        days = list(self.days_closed)
        for index, day in self.days_live.items():
            days[index] = day
        return days

    def window(self, name: str) -> Counts:
        return self.windows.get(name) or Counts()

    @property
    def spark(self) -> Sequence[float | None]:
        """The last 24 hourly error rates, oldest first."""
        return self.hourly[-SPARK_HOURS:]


def _outcome_sums(conn: Connection, lo: int, hi: int) -> dict[ScopeKey, Vector]:
    sums = ", ".join(f"SUM({c})" for c in OUTCOME_COLUMNS)
    return {
        (row[0], row[1]): [int(v) for v in row[2:]]
        for row in conn.execute(
            text(
                f"SELECT scope, name, {sums} FROM outcome_buckets WHERE resolution = 60 "
                "AND start >= :lo AND start < :hi GROUP BY scope, name"
            ),
            {"lo": lo, "hi": hi},
        )
    }


LatencyKey = tuple[str, str, str, int]  # scope, name, metric, bin


def _latency_sums(conn: Connection, lo: int, hi: int) -> dict[LatencyKey, Vector]:
    sums: dict[LatencyKey, Vector] = {}
    for scope, name, latency in conn.execute(
        text(
            "SELECT scope, name, latency FROM outcome_buckets WHERE resolution = 60 "
            "AND latency IS NOT NULL AND start >= :lo AND start < :hi"
        ),
        {"lo": lo, "hi": hi},
    ):
        for metric, bin_index, count in packed.by_metric(latency):
            sums.setdefault((scope, name, metric, bin_index), [0])[0] += int(count)
    return sums


def _bucket_rows(conn: Connection, resolution: int, lo: int, hi: float) -> Iterator[Any]:
    """(scope, name, start, succeeded, failed, canceled, aborted, other) rows, lo <= start < hi.

    Called with hi = now + 1 for the open buckets: a bucket after `now` (a replica whose clock
    runs ahead) is left out, as storage.rates does."""
    return iter(
        conn.execute(
            text(
                f"SELECT scope, name, start, {', '.join(OUTCOME_COLUMNS)} FROM outcome_buckets "
                "WHERE resolution = :res AND start >= :lo AND start < :hi"
            ),
            {"res": resolution, "lo": lo, "hi": hi},
        )
    )


HourSeries = dict[ScopeKey, tuple[list[float | None], Counts]]
DaySeries = dict[ScopeKey, tuple[Day | None, ...]]


def _load_hours(conn: Connection, lo: int, hi: int) -> HourSeries:
    series: dict[ScopeKey, tuple[list[float | None], Vector]] = {}
    for scope, name, start, *vector in _bucket_rows(conn, 3600, lo, hi):
        rates, sums = series.setdefault((scope, name), ([None] * HOURS, [0] * len(vector)))
        judged = vector[0] + vector[1]
        if judged:
            rates[(start - lo) // 3600] = vector[1] / judged
        for i, v in enumerate(vector):
            sums[i] += int(v)
    return {key: (rates, Counts(*sums)) for key, (rates, sums) in series.items()}


def _load_days(conn: Connection, lo: int, hi: int) -> DaySeries:
    """Tuples: shared by every refresh until the next day closes, never changed in place
    (dashboard.svg memoizes the bar of each by identity)."""
    series: dict[ScopeKey, list[Day | None]] = {}
    for scope, name, start, ok, failed, *_ in _bucket_rows(conn, 86400, lo, hi):
        days = series.setdefault((scope, name), [None] * HISTORY_DAYS)
        days[(start - lo) // 86400] = Day(start, ok, failed)
    return {key: tuple(days) for key, days in series.items()}


def _load_latency(sums: dict[LatencyKey, Vector]) -> dict[ScopeKey, Latency]:
    histograms: dict[tuple[str, str, str], dict[int, int]] = defaultdict(dict)
    for (scope, name, metric, bin_index), (count,) in sums.items():
        histograms[(scope, name, metric)][bin_index] = count
    found: dict[ScopeKey, list[float | None]] = {}
    for (scope, name, metric), histogram in histograms.items():
        if metric not in ("predict", "queue"):
            continue  # total time: read by latency rules, not shown in these columns
        slot = found.setdefault((scope, name), [None] * 4)
        offset = 0 if metric == "predict" else 2
        slot[offset], slot[offset + 1] = percentiles(histogram, (0.5, 0.95))
    return {key: (v[0], v[1], v[2], v[3]) for key, v in found.items()}


class Readings:
    """Every scope's windows, sparkline, history and percentiles, from closed-bucket caches
    plus a live read of the buckets still open. One per app; safe across request threads.

    Error counts are live to the last commit. Latency percentiles cover the last hour up to the
    last closed minute: recomputed once a minute, they cost a refresh nothing.
    """

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.windows: dict[str, SlidingSums[ScopeKey]] = {
            "5m": SlidingSums(resolution=60, span=300, grouped=_outcome_sums),
            "1h": SlidingSums(resolution=60, span=3600, grouped=_outcome_sums),
        }
        self.counts: dict[str, tuple[int, dict[ScopeKey, Counts]]] = {}
        self.latency_sums = SlidingSums(resolution=60, span=LATENCY_WINDOW, grouped=_latency_sums)
        self.latency_at: tuple[int, int] | None = None
        self.latency: dict[ScopeKey, Latency] = {}
        self.hours = ClosedSeries(resolution=3600, span=DAY_SPAN, load=_load_hours)
        self.days = ClosedSeries(resolution=86400, span=HISTORY_SPAN, load=_load_days)
        self.usage = UsageReadings()

    def _closed_counts(self, window: str, conn: Connection, now: float) -> dict[ScopeKey, Counts]:
        """The window's closed sums as Counts, rebuilt only when the sums change: Counts are
        frozen, so every refresh shares them."""
        sums = self.windows[window]
        vector = sums.closed(conn, now)
        kept = self.counts.get(window)
        if kept is None or kept[0] != sums.version:
            kept = self.counts[window] = (sums.version, {k: Counts(*v) for k, v in vector.items()})
        return kept[1]

    def read(self, conn: Connection, *, now: float) -> dict[ScopeKey, ScopeReading]:
        with self.lock:  # the sums are updated in place: take frozen Counts under the lock
            closed = {w: self._closed_counts(w, conn, now) for w in self.windows}
            if self.latency_sums.bounds(now) != self.latency_at:
                self.latency = _load_latency(self.latency_sums.closed(conn, now))
                self.latency_at = self.latency_sums.bounds(now)
            latency = self.latency
            hours = self.hours.closed(conn, now)
            days = self.days.closed(conn, now)
        readings: dict[ScopeKey, ScopeReading] = {}

        def get(key: ScopeKey) -> ScopeReading:
            reading = readings.get(key)
            if reading is None:
                reading = readings[key] = ScopeReading(key[0], key[1])
            return reading

        day_lo, day_hi = self.days.bounds(now)
        for key, series in days.items():
            get(key).days_closed = series
        for scope, name, start, ok, failed, *_ in _bucket_rows(conn, 86400, day_hi, now + 1):
            index = (start - day_lo) // 86400
            if 0 <= index < HISTORY_DAYS:
                get((scope, name)).days_live[index] = Day(start, ok, failed)

        hour_lo, hour_hi = self.hours.bounds(now)
        for key, (rates, sums) in hours.items():
            reading = get(key)
            reading.hourly = rates
            reading.windows["24h"] = sums
        for scope, name, start, *vector in _bucket_rows(conn, 3600, hour_hi, now + 1):
            index = (start - hour_lo) // 3600
            if 0 <= index < HOURS:
                reading = get((scope, name))
                reading.windows["24h"] = reading.windows.get("24h", _NONE) + Counts(*vector)
                judged = vector[0] + vector[1]
                hourly = list(reading.hourly)
                hourly[index] = vector[1] / judged if judged else None
                reading.hourly = hourly

        for window, per_key in closed.items():
            for key, counts in per_key.items():
                get(key).windows[window] = counts
        live_from = {w: s.bounds(now)[1] for w, s in self.windows.items()}
        for scope, name, start, *vector in _bucket_rows(conn, 60, min(live_from.values()), now + 1):
            reading = get((scope, name))
            counts = Counts(*vector)
            for window, edge in live_from.items():
                if start >= edge:
                    reading.windows[window] = reading.windows.get(window, _NONE) + counts

        for key, values in latency.items():
            get(key).latency = values
        for key, used in self.usage.read(conn, now=now).items():
            get(key).usage = used
        return readings


def percentiles(histogram: dict[int, int], qs: tuple[float, ...]) -> list[float | None]:
    """storage.rollups.percentile for several quantiles in one pass over the sorted bins."""
    total = sum(histogram.values())
    if total == 0:
        return [None] * len(qs)
    out: list[float | None] = []
    seen = 0
    bins = sorted(histogram)
    i = 0
    for q in qs:
        while i < len(bins) and seen + histogram[bins[i]] < q * total:
            seen += histogram[bins[i]]
            i += 1
        out.append(bin_value(bins[min(i, len(bins) - 1)]))
    return out
