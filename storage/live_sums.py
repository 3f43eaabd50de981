"""A sliding window's per-key sums in two parts: the closed buckets, kept
(storage.window_cache.SlidingSums), and the open ones, read on every call. The reader under the
latency and spend caches."""

from __future__ import annotations

from collections.abc import Hashable
from typing import Generic, TypeVar

from sqlalchemy import Connection

from hookwatch.storage.window_cache import GRACE, REFRESH, GroupedSums, SlidingSums, Vector

K = TypeVar("K", bound=Hashable)


class LiveSums(Generic[K]):
    """Sums per key over the buckets overlapping (now - span, now] (storage.rates' window
    semantics), from `read(conn, lo, hi)`: the sums over buckets starting in [lo, hi).
    Not thread-safe: callers hold a lock (the evaluator's, the dashboard's)."""

    def __init__(
        self,
        *,
        resolution: int,
        span: float,
        read: GroupedSums[K],
        grace: int = GRACE,
        refresh: float | None = REFRESH,
    ) -> None:
        self.read = read
        self.closed = SlidingSums(resolution=resolution, span=span, grouped=self._owned,
                                  grace=grace, refresh=refresh)

    def _owned(self, conn: Connection, lo: int, hi: int) -> dict[K, Vector]:
        """SlidingSums changes what it is given in place: give it copies."""
        return {k: list(v) for k, v in self.read(conn, lo, hi).items()}

    def parts(self, conn: Connection, now: float
              ) -> tuple[int, dict[K, Vector], dict[K, Vector]]:
        """(version, closed, live): the closed buckets' sums (the same dict, changed in place,
        until `version` changes: callers keep what they derive from it by version) and the
        open buckets' sums, read now."""
        closed = self.closed.closed(conn, now)
        return self.closed.version, closed, self.read(conn, self.closed.hi, int(now) + 1)
