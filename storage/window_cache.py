"""Windowed counts kept over closed buckets, so each evaluation reads only the open ones.

The writer adds an outcome to the bucket holding its commit time (storage.batch), so a bucket
whose end is more than GRACE seconds past (a batch in flight, clock skew between replicas) no
longer changes. Per window, the sum over its closed buckets is kept and slid forward: the
buckets that close are added and those that leave are subtracted, each read once with a
grouped query shared by every window of that resolution. The still-open buckets are read on
every call. Everything is re-read every `refresh` seconds, so an outcome that arrived later
than GRACE costs accuracy for minutes at most. Same semantics as
`storage.rates.multi_window_counts`, which tests compare it with.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass

from sqlalchemy import func, select

from storage.rates import OUTCOME_COLUMNS, Counts, Db, ScopeKey, as_connection, resolution_for
from storage.tables import OutcomeBucket

GRACE = 15
REFRESH = 600.0
Vector = list[int]
Grouped = Callable[[int, int, int], dict[ScopeKey, Vector]]
_OUTCOME = OutcomeBucket.__table__.c  # type: ignore[attr-defined]
_EMPTY = Counts()


@dataclass
class _Window:
    lo: int  # first bucket start in the window
    hi: int  # first bucket start not yet closed
    sums: dict[ScopeKey, Vector]
    loaded_at: float
    counts: dict[ScopeKey, Counts] | None = None  # `sums` as Counts, until they change

    def closed_counts(self) -> dict[ScopeKey, Counts]:
        if self.counts is None:
            self.counts = {k: Counts(*(max(0, v) for v in vector))
                           for k, vector in self.sums.items()}
        return self.counts


def _start(value: float, resolution: int) -> int:
    edge = int(value)
    return edge - edge % resolution


class WindowCache:
    """Not thread-safe: the evaluator uses it under its lock."""

    def __init__(self, *, grace: int = GRACE, refresh: float = REFRESH) -> None:
        self.grace = grace
        self.refresh = refresh
        self._windows: dict[float, _Window] = {}
        self.reads = 0  # grouped queries issued, for tests and the benchmark

    def counts(self, db: Db, *, now: float, windows: Iterable[float]
               ) -> dict[float, dict[ScopeKey, Counts]]:
        conn = as_connection(db)
        memo: dict[tuple[int, int, int], dict[ScopeKey, Vector]] = {}

        def grouped(resolution: int, lo: int, hi: int) -> dict[ScopeKey, Vector]:
            """Sums per scope over the buckets starting in [lo, hi)."""
            key = (resolution, lo, hi)
            if key not in memo:
                query = (
                    select(_OUTCOME.scope, _OUTCOME.name,
                           *(func.sum(getattr(_OUTCOME, c)) for c in OUTCOME_COLUMNS))
                    .where(_OUTCOME.resolution == resolution, _OUTCOME.start >= lo,
                           _OUTCOME.start < hi)
                    .group_by(_OUTCOME.scope, _OUTCOME.name)
                )
                self.reads += 1
                memo[key] = {(r[0], r[1]): [int(v or 0) for v in r[2:]]
                             for r in conn.execute(query)}
            return memo[key]

        result: dict[float, dict[ScopeKey, Counts]] = {}
        for window in sorted({float(w) for w in windows}):
            resolution = resolution_for(window)
            lo = _start(now - window, resolution)
            hi = max(lo, _start(now - self.grace, resolution))
            closed = self._slide(window, resolution, lo, hi, now, grouped)
            live = grouped(resolution, hi, int(now) + 1)  # the open buckets, read every time
            merged = dict(closed.closed_counts())
            for key, vector in live.items():
                total = merged.get(key, _EMPTY) + Counts(*vector)
                if total.total:
                    merged[key] = total
            result[window] = merged
        return result

    def _slide(self, window: float, resolution: int, lo: int, hi: int, now: float,
               grouped: Grouped) -> _Window:
        kept = self._windows.get(window)
        fresh = (kept is None or lo < kept.lo or hi < kept.hi or lo >= kept.hi
                 or now - kept.loaded_at >= self.refresh or now < kept.loaded_at)
        if fresh:
            sums = {k: list(v) for k, v in grouped(resolution, lo, hi).items()} if hi > lo \
                else {}
            self._windows[window] = _Window(lo, hi, sums, now)
            return self._windows[window]
        assert kept is not None
        if hi > kept.hi:
            _merge(kept.sums, grouped(resolution, kept.hi, hi), 1)
            kept.counts = None
        if lo > kept.lo:
            _merge(kept.sums, grouped(resolution, kept.lo, lo), -1)
            kept.counts = None
        kept.lo, kept.hi = lo, hi
        return kept


def _merge(into: dict[ScopeKey, Vector], other: dict[ScopeKey, Vector], sign: int) -> None:
    for key, vector in other.items():
        mine = into.setdefault(key, [0] * len(vector))
        for i, value in enumerate(vector):
            mine[i] += sign * value
        if not any(mine):
            del into[key]
