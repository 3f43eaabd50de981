"""Caches over closed time buckets, so a page refresh reads only the buckets still open.

The writer adds a terminal outcome to the bucket holding its commit time (storage.batch), so a
bucket whose end lies in the past no longer changes. Once a bucket is GRACE seconds past its
end (room for a batch in flight and small clock skew between replicas) it is read once and
kept; each refresh then reads only the last one or two buckets. Without this a page over 1,000
busy scopes reads some 500,000 bucket rows (bench/bench_dashboard.py).
"""

from __future__ import annotations

from collections.abc import Callable, Hashable
from typing import Generic, TypeVar

from sqlalchemy import Connection

GRACE = 15
"""Seconds after a bucket's end before it is treated as final."""

K = TypeVar("K", bound=Hashable)
V = TypeVar("V")
Vector = list[int]
GroupedSums = Callable[[Connection, int, int], dict[K, Vector]]
"""(conn, lo, hi) -> sums per key over the buckets whose start is in [lo, hi)."""


def window_start(now: float, resolution: int, span: int) -> int:
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
    buckets that close and subtracting those that leave, each read once with a grouped query."""

    def __init__(
        self, *, resolution: int, span: int, grouped: GroupedSums[K], grace: int = GRACE
    ) -> None:
        self.resolution = resolution
        self.span = span
        self.grouped = grouped
        self.grace = grace
        self.lo = self.hi = 0
        self.sums: dict[K, Vector] = {}

    def bounds(self, now: float) -> tuple[int, int]:
        lo = window_start(now, self.resolution, self.span)
        return lo, max(lo, closed_until(now, self.resolution, self.grace))

    def closed(self, conn: Connection, now: float) -> dict[K, Vector]:
        """Sums over the window's closed buckets at `now`; read live from `bounds(now)[1]` on."""
        lo, hi = self.bounds(now)
        if (lo, hi) == (self.lo, self.hi):
            return self.sums
        if not self.sums or lo < self.lo or hi < self.hi or lo >= self.hi:
            self.sums = self.grouped(conn, lo, hi) if hi > lo else {}
        else:
            _merge(self.sums, self.grouped(conn, self.hi, hi), 1)
            if lo > self.lo:
                _merge(self.sums, self.grouped(conn, self.lo, lo), -1)
        self.lo, self.hi = lo, hi
        return self.sums


def _merge(into: dict[K, Vector], other: dict[K, Vector], sign: int) -> None:
    for key, vector in other.items():
        mine = into.get(key)
        if mine is None:
            into[key] = [sign * v for v in vector]
            continue
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
