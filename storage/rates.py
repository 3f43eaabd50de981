"""Windowed outcome counts, latency percentiles and history, read from the time buckets.

Every reader here (except `stuck_counts` and `top_fingerprints`, which need per-prediction
facts) reads `outcome_buckets` only (latency histograms included), so its cost grows with the window
length and the number of scopes, never with the number of stored events.

The API (all keyword-only; the first argument is a SQLModel `Session` or a SQLAlchemy
`Connection`; times are unix seconds; a scope key is `(scope, name)`, e.g.
`("deployment", "acme/sdxl")`, `("version", "acme/sdxl:5c7d...")`):

- `window_counts(db, now=, window_seconds=, scope=None, names=None) -> {key: Counts}`
- `multi_window_counts(db, now=, windows=[...], scope=None, names=None)
   -> {window_seconds: {key: Counts}}`: several windows in one scan per resolution.
- `latency_percentiles(db, now=, window_seconds=, metric="predict"|"queue"|"total", qs=(0.5, 0.95),
   scope=None, names=None) -> {key: Percentiles}`
- `history(db, scope=, name=, resolution=, since=, now=) -> [Point]`: dense, oldest first,
   zero-filled; e.g. 24 hourly points for a sparkline, 90 daily points for uptime bars.
- `histories(db, resolution=, since=, now=, scope=None, names=None) -> {key: [Point]}`
- `top_fingerprints(db, since=, scope=None, name=None, limit=5) -> [FingerprintGroup]`
- `stuck_counts(db, now=, older_than=, since=None, scope=None) -> {key: int}`
- `storage.window_cache.WindowCache`: the same counts as `multi_window_counts`, kept over the
   closed buckets so that each call reads only the buckets still open (for the evaluator).

Window semantics: a bucket `[start, start + resolution)` is counted when it overlaps
`(now - window, now]`, so a window never misses an outcome it covers and may include up to
one bucket width more. The resolution is chosen from the window by `resolution_for`: minute
buckets up to 2 h, hourly up to 7 days, daily beyond (a 6 h window reads 7 rows per scope).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import Connection, and_, case, func, literal, or_, select
from sqlalchemy.sql.elements import ColumnElement
from sqlmodel import Session

from hookwatch.storage import packed
from hookwatch.storage.rollups import (
    LATENCY_METRICS,
    SCOPES,
    ScopeKey,
    percentile,
    scope_names,
)
from hookwatch.storage.tables import OutcomeBucket, Prediction

Db = Session | Connection

MINUTE, HOUR, DAY = 60, 3600, 86400
_OUTCOME = OutcomeBucket.__table__.c  # type: ignore[attr-defined]
_PRED = Prediction.__table__.c  # type: ignore[attr-defined]
OUTCOME_COLUMNS = ("succeeded", "failed", "canceled", "aborted", "other")
_IN_CHUNK = 500  # names per IN (...) list, well under SQLite's bound-parameter limit


@dataclass(frozen=True, slots=True)
class Counts:
    """Terminal outcomes in a window. Canceled and aborted are counted apart from errors."""

    succeeded: int = 0
    failed: int = 0
    canceled: int = 0
    aborted: int = 0
    other: int = 0

    @property
    def total(self) -> int:
        return self.succeeded + self.failed + self.canceled + self.aborted + self.other

    @property
    def decided(self) -> int:
        """The predictions an error rate is computed over: succeeded + failed."""
        return self.succeeded + self.failed

    @property
    def error_rate(self) -> float | None:
        """failed / (succeeded + failed); None when neither happened."""
        return self.failed / self.decided if self.decided else None

    def __add__(self, other: Counts) -> Counts:
        return Counts(self.succeeded + other.succeeded, self.failed + other.failed,
                      self.canceled + other.canceled, self.aborted + other.aborted,
                      self.other + other.other)

    def as_dict(self) -> dict[str, int]:
        return {c: getattr(self, c) for c in OUTCOME_COLUMNS}


@dataclass(frozen=True, slots=True)
class Percentiles:
    count: int
    values: dict[float, float | None] = field(default_factory=dict)  # q -> seconds


@dataclass(frozen=True, slots=True)
class Point:
    start: int
    counts: Counts


@dataclass(frozen=True, slots=True)
class FingerprintGroup:
    fingerprint: str
    count: int
    first_seen: float
    last_seen: float
    example: str
    models: list[str]


def resolution_for(window_seconds: float) -> int:
    """Minute buckets up to 2 h, hourly below 7 days, daily from 7 days."""
    if window_seconds <= 2 * HOUR:
        return MINUTE
    if window_seconds < 7 * DAY:
        return HOUR
    return DAY


def as_connection(db: Db) -> Connection:
    return db.connection() if isinstance(db, Session) else db


def _scope_filter(
    columns: Any, scope: str | None, names: Iterable[str] | None
) -> list[ColumnElement[bool]]:
    where: list[ColumnElement[bool]] = []
    if scope is not None:
        if scope not in SCOPES:
            raise ValueError(f"unknown scope {scope!r}; expected one of {SCOPES}")
        where.append(columns.scope == scope)
    if names is not None:
        wanted = sorted(set(names))
        if not wanted:
            where.append(literal(False))
        else:
            chunks = [wanted[i : i + _IN_CHUNK] for i in range(0, len(wanted), _IN_CHUNK)]
            where.append(or_(*(columns.name.in_(chunk) for chunk in chunks)))
    return where


def _overlap_start(now: float, window: float, resolution: int) -> int:
    """The first bucket start overlapping (now - window, now]."""
    edge = now - window
    return int(edge - edge % resolution)


def multi_window_counts(
    db: Db,
    *,
    now: float,
    windows: Iterable[float],
    scope: str | None = None,
    names: Iterable[str] | None = None,
) -> dict[float, dict[ScopeKey, Counts]]:
    """Counts for several windows, one query per resolution (each window a SUM(CASE ...))."""
    wanted = sorted({float(w) for w in windows})
    if any(w <= 0 for w in wanted):
        raise ValueError("windows must be positive")
    names_list = list(names) if names is not None else None
    by_resolution: dict[int, list[float]] = {}
    for window in wanted:
        by_resolution.setdefault(resolution_for(window), []).append(window)
    result: dict[float, dict[ScopeKey, Counts]] = {w: {} for w in wanted}
    conn = as_connection(db)
    for resolution, group in by_resolution.items():
        firsts = [_overlap_start(now, w, resolution) for w in group]
        sums = [
            func.sum(case((_OUTCOME.start >= first, getattr(_OUTCOME, column)), else_=0))
            for first in firsts
            for column in OUTCOME_COLUMNS
        ]
        query = (
            select(_OUTCOME.scope, _OUTCOME.name, *sums)
            .where(
                _OUTCOME.resolution == resolution,
                _OUTCOME.start >= min(firsts),
                _OUTCOME.start <= now,
                *_scope_filter(_OUTCOME, scope, names_list),
            )
            .group_by(_OUTCOME.scope, _OUTCOME.name)
        )
        width = len(OUTCOME_COLUMNS)
        for row in conn.execute(query):
            key = (row[0], row[1])
            for i, window in enumerate(group):
                values = [int(v or 0) for v in row[2 + i * width : 2 + (i + 1) * width]]
                if any(values):
                    result[window][key] = Counts(*values)
    return result


def window_counts(
    db: Db,
    *,
    now: float,
    window_seconds: float,
    scope: str | None = None,
    names: Iterable[str] | None = None,
) -> dict[ScopeKey, Counts]:
    """Counts per scope over one window; scopes without outcomes in it are absent."""
    counts = multi_window_counts(db, now=now, windows=[window_seconds], scope=scope, names=names)
    return counts[float(window_seconds)]


def latency_percentiles(
    db: Db,
    *,
    now: float,
    window_seconds: float,
    metric: str = "predict",
    qs: Sequence[float] = (0.5, 0.95),
    scope: str | None = None,
    names: Iterable[str] | None = None,
) -> dict[ScopeKey, Percentiles]:
    """predict_time ("predict"), queue time ("queue" = started - created) or total time
    ("total" = completed - created) percentiles.

    Estimated from half-octave histogram bins (about 19% wide); scopes without data are absent.
    Latency is kept in minute and hourly buckets only, so long windows read hourly ones.
    """
    if metric not in LATENCY_METRICS:
        raise ValueError(f"metric must be one of {', '.join(LATENCY_METRICS)}")
    resolution = min(resolution_for(window_seconds), HOUR)
    query = select(_OUTCOME.scope, _OUTCOME.name, _OUTCOME.latency).where(
        _OUTCOME.resolution == resolution,
        _OUTCOME.start >= _overlap_start(now, window_seconds, resolution),
        _OUTCOME.start <= now,
        _OUTCOME.latency.is_not(None),
        *_scope_filter(_OUTCOME, scope, names),
    )
    histograms = packed.histograms(
        (((r[0], r[1]), r[2]) for r in as_connection(db).execute(query)), metric)
    return {
        key: Percentiles(
            count=sum(hist.values()), values={q: percentile(hist, q) for q in qs}
        )
        for key, hist in histograms.items()
    }


def histories(
    db: Db,
    *,
    resolution: int,
    since: float,
    now: float,
    scope: str | None = None,
    names: Iterable[str] | None = None,
) -> dict[ScopeKey, list[Point]]:
    """Dense per-bucket counts from the bucket holding `since` to the one holding `now`."""
    if resolution not in (MINUTE, HOUR, DAY):
        raise ValueError("resolution must be 60, 3600 or 86400")
    first = int(since - since % resolution)
    last = int(now - now % resolution)
    query = select(
        _OUTCOME.scope, _OUTCOME.name, _OUTCOME.start,
        *(getattr(_OUTCOME, c) for c in OUTCOME_COLUMNS),
    ).where(
        _OUTCOME.resolution == resolution,
        _OUTCOME.start >= first,
        _OUTCOME.start <= last,
        *_scope_filter(_OUTCOME, scope, names),
    )
    found: dict[ScopeKey, dict[int, Counts]] = {}
    for row in as_connection(db).execute(query):
        found.setdefault((row[0], row[1]), {})[int(row[2])] = Counts(*(int(v) for v in row[3:]))
    starts = range(first, last + 1, resolution)
    empty = Counts()
    return {
        key: [Point(start, per.get(start, empty)) for start in starts]
        for key, per in found.items()
    }


def history(
    db: Db, *, scope: str, name: str, resolution: int, since: float, now: float
) -> list[Point]:
    """One scope's dense history (all zeros when it has none)."""
    found = histories(db, resolution=resolution, since=since, now=now, scope=scope, names=[name])
    if (scope, name) in found:
        return found[(scope, name)]
    first = int(since - since % resolution)
    last = int(now - now % resolution)
    return [Point(start, Counts()) for start in range(first, last + 1, resolution)]


def _prediction_scope(scope: str | None, name: str | None) -> list[ColumnElement[bool]]:
    """Predictions counted under (scope, name); see storage.rollups.scope_names."""
    if scope is None or name is None:
        if name is not None:
            raise ValueError("a name needs its scope")
        return []
    if scope == "model":
        return [_PRED.model == name]
    if scope == "deployment":
        return [_PRED.deployment == name]
    if scope == "version":
        model, sep, version = name.rpartition(":")
        own = and_(_PRED.model.is_(None), _PRED.version == name)
        return [or_(and_(_PRED.model == model, _PRED.version == version), own) if sep else own]
    raise ValueError(f"unknown scope {scope!r}; expected one of {SCOPES}")


def top_fingerprints(
    db: Db,
    *,
    since: float,
    scope: str | None = None,
    name: str | None = None,
    limit: int = 5,
) -> list[FingerprintGroup]:
    """The most frequent failure groups counted since `since`, most frequent first.

    Reads failed predictions through the (status, counted_at) index: the cost grows with the
    failures in the period, not with stored history.
    """
    where = [_PRED.status == "failed", _PRED.counted_at >= since, *_prediction_scope(scope, name)]
    fp = func.coalesce(_PRED.fingerprint, "")
    query = (
        select(
            fp, func.count(), func.min(_PRED.counted_at), func.max(_PRED.counted_at),
            func.min(func.coalesce(_PRED.error, "")),
        )
        .where(*where)
        .group_by(fp)
        .order_by(func.count().desc(), fp)
        .limit(limit)
    )
    conn = as_connection(db)
    rows = conn.execute(query).all()
    if not rows:
        return []
    models: dict[str, set[str]] = {}
    model_query = (
        select(fp, _PRED.model)
        .where(*where, _PRED.model.is_not(None), fp.in_([r[0] for r in rows]))
        .distinct()
    )
    for fingerprint, model in conn.execute(model_query):
        models.setdefault(fingerprint, set()).add(model)
    return [
        FingerprintGroup(
            fingerprint=r[0] or "(no error text)",
            count=int(r[1]),
            first_seen=float(r[2]),
            last_seen=float(r[3]),
            example=r[4],
            models=sorted(models.get(r[0], ())),
        )
        for r in rows
    ]


def stuck_counts(
    db: Db,
    *,
    now: float,
    older_than: float,
    since: float | None = None,
    scope: str | None = None,
) -> dict[ScopeKey, int]:
    """Predictions still starting/processing `older_than` seconds after first seen, per scope.

    `since` bounds how far back a prediction counts (first seen at or after it); the
    (rank, first_seen_at) index keeps the scan to the non-terminal rows.
    """
    # rank IN (0, 1), not rank < 2: each rank is then one seek on (rank, first_seen_at).
    where = [_PRED.rank.in_((0, 1)), _PRED.first_seen_at <= now - older_than]
    if since is not None:
        where.append(_PRED.first_seen_at >= since)
    query = (
        select(_PRED.model, _PRED.deployment, _PRED.version, func.count())
        .where(*where)
        .group_by(_PRED.model, _PRED.deployment, _PRED.version)
    )
    counts: dict[ScopeKey, int] = {}
    for model, deployment, version, n in as_connection(db).execute(query):
        for key in scope_names(model, deployment, version):
            if scope is None or key[0] == scope:
                counts[key] = counts.get(key, 0) + int(n)
    return counts
