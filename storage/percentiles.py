"""Latency histograms per scope over a window (outcome_buckets.latency), and percentiles from
them with their error bound.

Each prediction adds one to a half-octave bin of its queue, predict and total time
(storage.rollups.latency_bin: bin b holds [2**(b/2), 2**((b+1)/2)) ms). A percentile is read
as the nearest-rank sample's bin and reported as that bin's geometric middle, so it is within
a factor of 2**0.25 of the true nearest-rank percentile of the same predictions: at most
RELATIVE_ERROR (18.9%) off, either way. Values under 1 ms count as 1 ms.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from functools import partial

from sqlalchemy import Connection, select

from hookwatch.storage import packed
from hookwatch.storage.live_sums import LiveSums
from hookwatch.storage.rates import HOUR, Db, ScopeKey, as_connection, resolution_for
from hookwatch.storage.rollups import HIST_BINS, bin_value
from hookwatch.storage.tables import OutcomeBucket
from hookwatch.storage.window_cache import GRACE, REFRESH, Vector

METRICS = {"queue_time": "queue", "predict_time": "predict", "total_time": "total"}
"""A rule's metric name -> its storage.rollups.LATENCY_METRICS name."""
RELATIVE_ERROR = 2 ** 0.25 - 1
"""The most a bucketed percentile can be off, relative to the true one (about 0.189)."""
Histogram = Mapping[int, int]  # bin -> predictions
HistKey = tuple[str, str, int]  # scope, name, bin
_BUCKET = OutcomeBucket.__table__.c  # type: ignore[attr-defined]


def latency_resolution(window: float) -> int:
    """Latency is kept in minute and hourly buckets only (no daily ones)."""
    return min(resolution_for(window), HOUR)


def quantile(histogram: Histogram, q: float) -> float | None:
    """The q-quantile (0 < q <= 1) in seconds: the bin holding the ceil(q * n)-th smallest
    sample, at its geometric middle; None without samples."""
    total = sum(histogram.values())
    if total <= 0:
        return None
    rank = q * total
    seen = 0
    bins = sorted(b for b, n in histogram.items() if n > 0)
    for index in bins:
        seen += histogram[index]
        if seen >= rank:
            return bin_value(index)
    return bin_value(bins[-1])


def _read(metric: str, resolution: int, conn: Connection, lo: int, hi: int
          ) -> dict[HistKey, Vector]:
    query = select(_BUCKET.scope, _BUCKET.name, _BUCKET.latency).where(
        _BUCKET.resolution == resolution, _BUCKET.start >= lo, _BUCKET.start < hi,
        _BUCKET.latency.is_not(None))
    sums: dict[HistKey, Vector] = {}
    for scope, name, text in conn.execute(query):
        for index, count in packed.bins(text, metric):
            sums.setdefault((scope, name, index), [0])[0] += int(count)
    return sums


def _by_scope(sums: Mapping[HistKey, Vector]) -> dict[ScopeKey, dict[int, int]]:
    found: dict[ScopeKey, dict[int, int]] = {}
    for (scope, name, index), (count,) in sums.items():
        if count > 0 and 0 <= index < HIST_BINS:
            found.setdefault((scope, name), {})[index] = count
    return found


def histograms(db: Db, *, now: float, window: float, metric: str
               ) -> dict[ScopeKey, dict[int, int]]:
    """Every scope's histogram of `metric` (of LATENCY_METRICS) over the window, read
    in full; scopes without samples are absent."""
    resolution = latency_resolution(window)
    edge = int(now - window)
    lo = edge - edge % resolution
    return _by_scope(_read(metric, resolution, as_connection(db), lo, int(now) + 1))


LatencyWant = tuple[str, float]  # metric (of LATENCY_METRICS), window seconds


class LatencyCache:
    """`histograms` for several (metric, window) pairs, the closed buckets kept between calls
    (storage.live_sums). Not thread-safe: the evaluator calls it under its lock."""

    def __init__(self, *, grace: int = GRACE, refresh: float = REFRESH) -> None:
        self.grace = grace
        self.refresh = refresh
        self._windows: dict[LatencyWant, LiveSums[HistKey]] = {}
        self._closed: dict[LatencyWant, tuple[int, dict[ScopeKey, dict[int, int]]]] = {}

    def histograms(self, db: Db, *, now: float, wants: Iterable[LatencyWant]
                   ) -> dict[LatencyWant, dict[ScopeKey, dict[int, int]]]:
        conn = as_connection(db)
        result: dict[LatencyWant, dict[ScopeKey, dict[int, int]]] = {}
        for metric, window in sorted(set(wants)):
            live = self._windows.get((metric, window))
            if live is None:
                resolution = latency_resolution(window)
                live = self._windows[(metric, window)] = LiveSums(
                    resolution=resolution, span=window, read=partial(_read, metric, resolution),
                    grace=self.grace, refresh=self.refresh)
            version, closed, open_ = live.parts(conn, now)
            kept = self._closed.get((metric, window))
            if kept is None or kept[0] != version:  # rebuilt only when a bucket closes
                kept = self._closed[(metric, window)] = (version, _by_scope(closed))
            merged = dict(kept[1])
            for key, histogram in _by_scope(open_).items():
                total = dict(merged.get(key, {}))
                for index, count in histogram.items():
                    total[index] = total.get(index, 0) + count
                merged[key] = total
            result[(metric, window)] = merged
        return result
