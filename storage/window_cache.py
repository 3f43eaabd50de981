"""Sums kept over closed time buckets, so a dashboard refresh or an evaluation reads only the
buckets still open.

The writer adds an outcome to the bucket holding its commit time (storage.batch), so a bucket
whose end is more than GRACE seconds past (a batch in flight, clock skew between replicas) no
longer changes: it is read once and kept. Per window, `SlidingSums` keeps the sum over its
closed buckets and slides it forward: the buckets that close are added and those that leave are
subtracted, each read once with a grouped query. `ClosedSeries` keeps per-bucket values instead
and re-reads them whole when a bucket closes. `WindowCache` is the evaluator's view: the counts
of `storage.rates.multi_window_counts`, which tests compare it with, from SlidingSums plus a read
of the open buckets, everything re-read every `refresh` seconds so that an outcome that arrived
later than GRACE costs accuracy for minutes at most. Without these caches a page over 1,000 busy
scopes reads some 500,000 bucket rows (bench/bench_dashboard.py).
"""

from __future__ import annotations

from collections.abc import Callable, Hashable, Iterable
from functools import partial
from typing import Generic, TypeVar

from sqlalchemy import Connection, func, select

from hookwatch.storage.rates import (
    OUTCOME_COLUMNS,
    Counts,
    Db,
    ScopeKey,
    as_connection,
    resolution_for,
)
from hookwatch.storage.tables import OutcomeBucket

GRACE = 15
"""Seconds after a bucket's end before it is treated as final."""
REFRESH = 600.0
"""WindowCache re-reads its closed buckets whole this often (seconds)."""

K = TypeVar("K", bound=Hashable)
V = TypeVar("V")
Vector = list[int]
GroupedSums = Callable[[Connection, int, int], dict[K, Vector]]
"""(conn, lo, hi) -> sums per key over the buckets whose start is in [lo, hi)."""
_OUTCOME = OutcomeBucket.__table__.c  # type: ignore[attr-defined]
_EMPTY = Counts()


def window_start(now: float, resolution: int, span: float) -> int:
    """The first bucket overlapping (now - span, now]: storage.rates' window semantics, so a
    window here counts what the alert engine counts for it."""
    edge = int(now - span)
    return edge - edge % resolution


def bucket_count(resolution: int, span: int) -> int:
    """How many buckets a window of `span` seconds overlaps at most."""
    return span // resolution + 1


def closed_until(now: float, resolution: int, grace: int = GRACE) -> int:
    """Buckets starting before this are final; from it on they are read live."""
    edge = int(now) - grace
    return edge - edge % resolution


class SlidingSums(Generic[K]):
    """Per-key sums over the closed buckets of a sliding window, kept up to date by adding the
    buckets that close and subtracting those that leave, each read once with a grouped query.
    `refresh`: seconds after which the sums are re-read whole (None: never). Not thread-safe:
    callers hold a lock. `version` changes whenever `sums` does."""

    def __init__(
        self,
        *,
        resolution: int,
        span: float,
        grouped: GroupedSums[K],
        grace: int = GRACE,
        refresh: float | None = None,
    ) -> None:
        self.resolution = resolution
        self.span = span
        self.grouped = grouped
        self.grace = grace
        self.refresh = refresh
        self.lo = self.hi = 0
        self.loaded_at = 0.0
        self.version = 0
        self.sums: dict[K, Vector] = {}

    def bounds(self, now: float) -> tuple[int, int]:
        lo = window_start(now, self.resolution, self.span)
        return lo, max(lo, closed_until(now, self.resolution, self.grace))

    def _stale(self, now: float) -> bool:
        if self.refresh is None:
            return False
        return now - self.loaded_at >= self.refresh or now < self.loaded_at

    def closed(self, conn: Connection, now: float) -> dict[K, Vector]:
        """Sums over the window's closed buckets at `now`; read live from `bounds(now)[1]` on."""
        lo, hi = self.bounds(now)
        stale = self._stale(now)
        if (lo, hi) == (self.lo, self.hi) and not stale:
            return self.sums
        self.version += 1
        if stale or not self.sums or lo < self.lo or hi < self.hi or lo >= self.hi:
            self.sums = self.grouped(conn, lo, hi) if hi > lo else {}
            self.loaded_at = now
        else:
            if hi > self.hi:
                _merge(self.sums, self.grouped(conn, self.hi, hi), 1)
            if lo > self.lo:
                _merge(self.sums, self.grouped(conn, self.lo, lo), -1)
        self.lo, self.hi = lo, hi
        return self.sums


def _merge(into: dict[K, Vector], other: dict[K, Vector], sign: int) -> None:
    for key, vector in other.items():
        mine = into.get(key)
        if mine is None:
            into[key] = mine = [0] * len(vector)
        for i, v in enumerate(vector):
            mine[i] += sign * v
        if not any(mine):
            del into[key]


class ClosedSeries(Generic[V]):
    """Per-bucket values of a window's closed buckets, re-read whole when a bucket closes
    (once an hour for hourly buckets, once a day for daily ones). `span=None`: every bucket
    since the first."""

    def __init__(
        self,
        *,
        resolution: int,
        span: int | None,
        load: Callable[[Connection, int, int], V],
        grace: int = GRACE,
    ) -> None:
        self.resolution = resolution
        self.span = span
        self.load = load
        self.grace = grace
        self.key: tuple[int, int] | None = None
        self.value: V | None = None

    def bounds(self, now: float) -> tuple[int, int]:
        lo = 0 if self.span is None else window_start(now, self.resolution, self.span)
        return lo, max(lo, closed_until(now, self.resolution, self.grace))

    def closed(self, conn: Connection, now: float) -> V:
        bounds = self.bounds(now)
        if bounds != self.key or self.value is None:
            self.value = self.load(conn, *bounds)
            self.key = bounds
        return self.value


class WindowCache:
    """`multi_window_counts` from SlidingSums per window plus a read of the open buckets.
    Not thread-safe: the evaluator uses it under its lock."""

    def __init__(self, *, grace: int = GRACE, refresh: float = REFRESH) -> None:
        self.grace = grace
        self.refresh = refresh
        self._windows: dict[float, SlidingSums[ScopeKey]] = {}
        self._counts: dict[float, tuple[int, dict[ScopeKey, Counts]]] = {}  # by sums version
        # Grouped reads within one call, shared by the windows of a resolution.
        self._memo: dict[tuple[int, int, int], dict[ScopeKey, Vector]] = {}
        self.reads = 0  # grouped queries issued, for tests and the benchmark

    def counts(self, db: Db, *, now: float, windows: Iterable[float]
               ) -> dict[float, dict[ScopeKey, Counts]]:
        conn = as_connection(db)
        self._memo = {}
        result: dict[float, dict[ScopeKey, Counts]] = {}
        for window in sorted({float(w) for w in windows}):
            sliding = self._windows.get(window)
            if sliding is None:
                resolution = resolution_for(window)
                sliding = self._windows[window] = SlidingSums(
                    resolution=resolution, span=window, grouped=partial(self._owned, resolution),
                    grace=self.grace, refresh=self.refresh,
                )
            sums = sliding.closed(conn, now)
            kept = self._counts.get(window)
            if kept is None or kept[0] != sliding.version:
                kept = self._counts[window] = (sliding.version, {
                    k: Counts(*(max(0, v) for v in vector)) for k, vector in sums.items()
                })
            # The open buckets, read every time.
            live = self._read(sliding.resolution, conn, sliding.hi, int(now) + 1)
            merged = dict(kept[1])
            for key, vector in live.items():
                total = merged.get(key, _EMPTY) + Counts(*vector)
                if total.total:
                    merged[key] = total
            result[window] = merged
        self._memo = {}
        return result

    def _owned(self, resolution: int, conn: Connection, lo: int, hi: int
               ) -> dict[ScopeKey, Vector]:
        """`_read`, copied: SlidingSums keeps what a full load gives it and changes it."""
        return {k: list(v) for k, v in self._read(resolution, conn, lo, hi).items()}

    def _read(self, resolution: int, conn: Connection, lo: int, hi: int
              ) -> dict[ScopeKey, Vector]:
        """Sums per scope over the buckets starting in [lo, hi), read once per call."""
        key = (resolution, lo, hi)
        if key not in self._memo:
            query = (
                select(_OUTCOME.scope, _OUTCOME.name,
                       *(func.sum(getattr(_OUTCOME, c)) for c in OUTCOME_COLUMNS))
                .where(_OUTCOME.resolution == resolution, _OUTCOME.start >= lo,
                       _OUTCOME.start < hi)
                .group_by(_OUTCOME.scope, _OUTCOME.name)
            )
            self.reads += 1
            self._memo[key] = {(r[0], r[1]): [int(v or 0) for v in r[2:]]
                               for r in conn.execute(query)}
        return self._memo[key]
