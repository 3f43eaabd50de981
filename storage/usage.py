"""Billed seconds per scope over a window: the sum of metrics.predict_time that the outcome
buckets keep (predict_time_sum), which spend is estimated from (alerts.pricing)."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from functools import partial

from sqlalchemy import Connection, func, select

from hookwatch.storage.live_sums import LiveSums
from hookwatch.storage.rates import Db, ScopeKey, as_connection, resolution_for
from hookwatch.storage.tables import OutcomeBucket
from hookwatch.storage.window_cache import GRACE, REFRESH, Vector

_OUTCOME = OutcomeBucket.__table__.c  # type: ignore[attr-defined]


@dataclass(frozen=True, slots=True)
class Usage:
    """predict_time summed over a window's predictions that reported one, and how many did."""

    seconds: float = 0.0
    predictions: int = 0


def _read(resolution: int, conn: Connection, lo: int, hi: int) -> dict[ScopeKey, Vector]:
    """[milliseconds, predictions] per scope: whole numbers, so the sliding sums never drift."""
    query = (
        select(_OUTCOME.scope, _OUTCOME.name, func.sum(_OUTCOME.predict_time_sum),
               func.sum(_OUTCOME.predict_time_count))
        .where(_OUTCOME.resolution == resolution, _OUTCOME.start >= lo, _OUTCOME.start < hi,
               _OUTCOME.predict_time_count > 0)
        .group_by(_OUTCOME.scope, _OUTCOME.name)
    )
    return {(r[0], r[1]): [round(float(r[2] or 0.0) * 1000), int(r[3] or 0)]
            for r in conn.execute(query)}


def _usage(sums: Mapping[ScopeKey, Vector]) -> dict[ScopeKey, Usage]:
    return {key: Usage(ms / 1000.0, n) for key, (ms, n) in sums.items() if n > 0}


def usage(db: Db, *, now: float, window: float) -> dict[ScopeKey, Usage]:
    """Every scope's usage over the buckets overlapping (now - window, now], read in full."""
    resolution = resolution_for(window)
    edge = int(now - window)
    return _usage(_read(resolution, as_connection(db), edge - edge % resolution, int(now) + 1))


class UsageCache:
    """`usage` for several windows, the closed buckets kept between calls. Not thread-safe."""

    def __init__(self, *, grace: int = GRACE, refresh: float | None = REFRESH) -> None:
        self.grace = grace
        self.refresh = refresh
        self._windows: dict[float, LiveSums[ScopeKey]] = {}
        self._closed: dict[float, tuple[int, dict[ScopeKey, Usage]]] = {}

    def usage(self, db: Db, *, now: float, windows: Iterable[float]
              ) -> dict[float, dict[ScopeKey, Usage]]:
        conn = as_connection(db)
        result: dict[float, dict[ScopeKey, Usage]] = {}
        for window in sorted({float(w) for w in windows}):
            live = self._windows.get(window)
            if live is None:
                resolution = resolution_for(window)
                live = self._windows[window] = LiveSums(
                    resolution=resolution, span=window, read=partial(_read, resolution),
                    grace=self.grace, refresh=self.refresh)
            version, closed, open_ = live.parts(conn, now)
            kept = self._closed.get(window)
            if kept is None or kept[0] != version:  # rebuilt only when a bucket closes
                kept = self._closed[window] = (version, _usage(closed))
            merged = dict(kept[1])
            for key, (ms, n) in open_.items():
                before = merged.get(key)
                if before is None:
                    merged[key] = Usage(ms / 1000.0, n)
                else:
                    merged[key] = Usage(before.seconds + ms / 1000.0, before.predictions + n)
            result[window] = {k: u for k, u in merged.items() if u.predictions > 0}
        return result
