"""Versions side by side: each model's or deployment's versions with their first-seen time,
outcome counts and predict-time histogram over a lookback, and the hourly series the
regression rule's confounding guard compares them with.

- `model_lineups(db, now=, lookback=, names=None) -> {model: Lineup}` reads the hourly
  `outcome_buckets` (with their latency histograms) of version scopes (named "model:version", see
  storage.rollups.scope_names) and the hourly model-scope rows for the rest of the fleet: the
  cost grows with the lookback and the number of versions, never with stored events.
- `deployment_lineups(db, now=, lookback=) -> {deployment: Lineup}`: buckets do not say which
  version a deployment ran, so this reads the predictions counted in the lookback, through
  the (status, counted_at) index; its cost grows with the predictions in the lookback.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

from sqlalchemy import Connection, func, literal, or_, select

from hookwatch.storage import packed
from hookwatch.storage.rates import (
    HOUR,
    MINUTE,
    OUTCOME_COLUMNS,
    Counts,
    Db,
    _scope_filter,
    as_connection,
)
from hookwatch.storage.rollups import latency_bin
from hookwatch.storage.tables import OutcomeBucket, Prediction

_OUTCOME = OutcomeBucket.__table__.c  # type: ignore[attr-defined]
_PRED = Prediction.__table__.c  # type: ignore[attr-defined]

Histogram = dict[int, int]  # latency bin (storage.rollups.latency_bin) -> predictions
Series = dict[int, Counts]  # hour start -> outcomes


@dataclass(frozen=True)
class VersionStats:
    """One version of a model or deployment over the lookback."""

    version: str
    first_seen: float
    counts: Counts = field(default_factory=Counts)
    predict: Histogram = field(default_factory=dict)
    hourly: Series = field(default_factory=dict)

    @property
    def predict_count(self) -> int:
        return sum(self.predict.values())


@dataclass(frozen=True)
class Lineup:
    """A model's or deployment's versions, oldest first seen first, and what the confounding
    guard compares it with: the hourly outcomes of a population it belongs to (`total`: the
    whole fleet for a model, the model's deployments for a deployment) and its own (`own`),
    so its peers are the difference."""

    scope: str
    name: str
    versions: tuple[VersionStats, ...]
    total: Series = field(default_factory=dict)  # shared between lineups: never mutated
    own: Series = field(default_factory=dict)
    peers_label: str = "all other models"
    since: float = 0.0  # the lookback's start: a version first seen here may be older

    def peers(self, start: float, end: float) -> Counts:
        """The peers' outcomes over the hours starting in [hour of start, hour of end)."""
        first, last = _hour(start), _hour(end)
        whole = sum((c for h, c in self.total.items() if first <= h < last), Counts())
        mine = sum((c for h, c in self.own.items() if first <= h < last), Counts())
        return _minus(whole, mine)

    def newest_pair(self) -> tuple[VersionStats, VersionStats] | None:
        """(previous, newest) by first seen, or None with fewer than two versions."""
        if len(self.versions) < 2:
            return None
        return self.versions[-2], self.versions[-1]


def _hour(ts: float) -> int:
    t = int(ts)
    return t - t % HOUR


def _add(series: Series, start: int, counts: Counts) -> None:
    series[start] = series.get(start, Counts()) + counts


def _minus(a: Counts, b: Counts) -> Counts:
    return Counts(*(max(0, x - y) for x, y in zip(a.as_dict().values(), b.as_dict().values(),
                                                   strict=True)))


def model_lineups(
    db: Db, *, now: float, lookback: float, names: Iterable[str] | None = None
) -> dict[str, Lineup]:
    """Every model with at least one version seen in the lookback (or those in `names`).

    One row per version (totals and first hour, summed by the database), its predict-time
    histogram, the fleet's hourly totals, and the own hourly series only of models whose
    newest version is new within the lookback (the guard's input): most models, most of the
    time, have none.
    """
    conn = as_connection(db)
    since = _hour(now - lookback)
    wanted = set(names) if names is not None else None
    where = [_OUTCOME.resolution == HOUR, _OUTCOME.scope == "version",
             _OUTCOME.start >= since, _OUTCOME.start <= now]
    if wanted is not None:
        where.append(or_(*(_OUTCOME.name.like(f"{_escape(m)}:%", escape="\\")
                           for m in sorted(wanted))) if wanted else literal(False))
    totals_q = select(_OUTCOME.name, func.min(_OUTCOME.start),
                      *(func.sum(getattr(_OUTCOME, c)) for c in OUTCOME_COLUMNS)
                      ).where(*where).group_by(_OUTCOME.name)
    totals: dict[str, Counts] = {}
    first: dict[str, float] = {}
    for row in conn.execute(totals_q):
        model, sep, _version = str(row[0]).rpartition(":")
        if not sep or (wanted is not None and model not in wanted):
            continue
        totals[str(row[0])] = Counts(*(int(v or 0) for v in row[2:]))
        first[str(row[0])] = float(row[1])
    if not totals:
        return {}
    latency_q = select(_OUTCOME.name, _OUTCOME.latency).where(
        _OUTCOME.resolution == HOUR, _OUTCOME.scope == "version", _OUTCOME.latency.is_not(None),
        _OUTCOME.start >= since, _OUTCOME.start <= now,
        *_scope_filter(_OUTCOME, None, totals))
    hists = packed.histograms(((str(r[0]), r[1]) for r in conn.execute(latency_q)), "predict")
    _refine_first_seen(conn, first, now=now)
    by_model: dict[str, list[VersionStats]] = {}
    for name, total in totals.items():
        model, _, version = name.rpartition(":")
        by_model.setdefault(model, []).append(
            VersionStats(version, first[name], total, hists.get(name, {})))
    for versions in by_model.values():
        versions.sort(key=lambda v: (v.first_seen, v.version))
    rolling = sorted(m for m, vs in by_model.items() if len(vs) > 1 and vs[-1].first_seen > since)
    fleet: Series = {}
    own: dict[str, Series] = {}
    if rolling:
        hourly = [_OUTCOME.resolution == HOUR, _OUTCOME.scope == "model",
                  _OUTCOME.start >= since, _OUTCOME.start <= now]
        fleet_q = select(_OUTCOME.start, *(func.sum(getattr(_OUTCOME, c))
                                           for c in OUTCOME_COLUMNS)
                         ).where(*hourly).group_by(_OUTCOME.start)
        for row in conn.execute(fleet_q):
            fleet[int(row[0])] = Counts(*(int(v or 0) for v in row[1:]))
        own_q = select(_OUTCOME.name, _OUTCOME.start,
                       *(getattr(_OUTCOME, c) for c in OUTCOME_COLUMNS)).where(
            *hourly, *_scope_filter(_OUTCOME, None, rolling))
        for row in conn.execute(own_q):
            own.setdefault(str(row[0]), {})[int(row[1])] = Counts(*(int(v) for v in row[2:]))
    return {model: Lineup("model", model, tuple(versions), fleet, own.get(model, {}),
                          "all other models", float(since))
            for model, versions in by_model.items()}


def _escape(name: str) -> str:
    """A model name as a LIKE prefix: its wildcards matched literally."""
    return name.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


def _refine_first_seen(conn: Connection, first: dict[str, float], *, now: float) -> None:
    """Versions first seen within the minute buckets' reach get their first minute, so two
    versions pushed in the same hour are told apart."""
    recent = [name for name, start in first.items() if start >= now - 2 * 86400 + HOUR]
    if not recent:
        return
    query = select(_OUTCOME.name, func.min(_OUTCOME.start)).where(
        _OUTCOME.resolution == MINUTE, _OUTCOME.scope == "version",
        *_scope_filter(_OUTCOME, None, recent)).group_by(_OUTCOME.name)
    for name, start in conn.execute(query):
        if start is not None:
            first[str(name)] = max(first[str(name)], float(start))


def deployment_lineups(db: Db, *, now: float, lookback: float) -> dict[str, Lineup]:
    """Every deployment with a decided prediction in the lookback, from the predictions."""
    since = now - lookback
    query = select(_PRED.deployment, _PRED.model, _PRED.version, _PRED.status,
                   _PRED.predict_time, _PRED.first_seen_at, _PRED.counted_at).where(
        _PRED.status.in_(("succeeded", "failed")), _PRED.counted_at >= since,
        _PRED.counted_at <= now, _PRED.deployment.is_not(None))
    first: dict[tuple[str, str], float] = {}
    tallies: dict[tuple[str, str], dict[int, list[int]]] = {}  # hour -> [succeeded, failed]
    hists: dict[tuple[str, str], Histogram] = {}
    models: dict[str, str] = {}
    for deployment, model, version, status, predict_time, first_seen, counted in (
            as_connection(db).execute(query)):
        key = (deployment, version or "(none)")
        if model and deployment not in models:
            models[deployment] = model
        seen = first_seen if first_seen is not None else counted
        if seen < first.get(key, seen + 1):
            first[key] = seen
        hour = int(counted) - int(counted) % HOUR
        tally = tallies.setdefault(key, {}).setdefault(hour, [0, 0])
        tally[status == "failed"] += 1
        if predict_time is not None and predict_time >= 0:
            hist = hists.setdefault(key, {})
            b = latency_bin(float(predict_time))
            hist[b] = hist.get(b, 0) + 1
    per_deployment: dict[str, list[VersionStats]] = {}
    own: dict[str, Series] = {}
    for key, hours in tallies.items():
        deployment, version = key
        hourly = {h: Counts(succeeded=t[0], failed=t[1]) for h, t in hours.items()}
        per_deployment.setdefault(deployment, []).append(VersionStats(
            version, float(first[key]), sum(hourly.values(), Counts()), hists.get(key, {}),
            hourly))
        for start, c in hourly.items():
            _add(own.setdefault(deployment, {}), start, c)
    fleet: Series = {}
    by_model: dict[str, Series] = {}
    members: dict[str, int] = {}
    for deployment, series in own.items():
        model = models.get(deployment)
        members[model or ""] = members.get(model or "", 0) + 1
        for start, c in series.items():
            _add(fleet, start, c)
            if model:
                _add(by_model.setdefault(model, {}), start, c)
    lineups: dict[str, Lineup] = {}
    for deployment, versions in per_deployment.items():
        versions.sort(key=lambda v: (v.first_seen, v.version))
        model = models.get(deployment)
        if model and members.get(model, 0) > 1:
            total, label = by_model[model], f"the other deployments of {model}"
        else:
            total, label = fleet, "all other deployments"
        lineups[deployment] = Lineup("deployment", deployment, tuple(versions), total,
                                     own.get(deployment, {}), label, since)
    return lineups


def lineups(db: Db, *, scope: str, now: float, lookback: float) -> Mapping[str, Lineup]:
    if scope == "model":
        return model_lineups(db, now=now, lookback=lookback)
    if scope == "deployment":
        return deployment_lineups(db, now=now, lookback=lookback)
    raise ValueError("regression compares versions within a model or a deployment")


class LineupCache:
    """Lineups kept for `max_age` seconds: versions change over minutes, while the evaluator
    runs every 15 s and after failures (up to twice a second), and a read of every version
    of 1,000 models costs a large share of a second."""

    def __init__(self, *, max_age: float = 60.0) -> None:
        self.max_age = max_age
        self._kept: dict[tuple[str, float], tuple[float, Mapping[str, Lineup]]] = {}

    def get(self, db: Db, *, scope: str, now: float, lookback: float) -> Mapping[str, Lineup]:
        key = (scope, lookback)
        hit = self._kept.get(key)
        if hit is not None and 0 <= now - hit[0] < self.max_age:
            return hit[1]
        fresh = lineups(db, scope=scope, now=now, lookback=lookback)
        self._kept[key] = (now, fresh)
        return fresh
