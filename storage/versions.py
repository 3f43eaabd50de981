"""Versions side by side: each model's or deployment's versions with their first-seen time,
outcome counts and predict-time histogram over a lookback, and the hourly series the
regression rule's confounding guard compares them with.

- `model_lineups(db, now=, lookback=, names=None) -> {model: Lineup}` reads the hourly
  `outcome_buckets` and `latency_buckets` of version scopes (named "model:version", see
  storage.rollups.scope_names) and the hourly model-scope rows for the rest of the fleet: the
  cost grows with the lookback and the number of versions, never with stored events.
- `deployment_lineups(db, now=, lookback=) -> {deployment: Lineup}`: buckets do not say which
  version a deployment ran, so this reads the predictions counted in the lookback, through
  the (status, counted_at) index; its cost grows with the predictions in the lookback.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

from sqlalchemy import Connection, func, select

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
from hookwatch.storage.tables import LatencyBucket, OutcomeBucket, Prediction

_OUTCOME = OutcomeBucket.__table__.c  # type: ignore[attr-defined]
_LATENCY = LatencyBucket.__table__.c  # type: ignore[attr-defined]
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
    """A model's or deployment's versions, oldest first seen first, and its peers' hourly
    outcomes (the rest of the fleet for a model, the model's other deployments for a
    deployment) for the confounding guard."""

    scope: str
    name: str
    versions: tuple[VersionStats, ...]
    peers: Series = field(default_factory=dict)
    peers_label: str = "all other models"
    since: float = 0.0  # the lookback's start: a version first seen here may be older

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
    """Every model with at least one version seen in the lookback (or those in `names`)."""
    conn = as_connection(db)
    since = _hour(now - lookback)
    wanted = set(names) if names is not None else None
    outcome_q = select(_OUTCOME.name, _OUTCOME.start,
                       *(getattr(_OUTCOME, c) for c in OUTCOME_COLUMNS)).where(
        _OUTCOME.resolution == HOUR, _OUTCOME.scope == "version", _OUTCOME.start >= since,
        _OUTCOME.start <= now)
    per_version: dict[str, dict[int, Counts]] = {}
    for row in conn.execute(outcome_q):
        model, sep, _version = str(row[0]).rpartition(":")
        if not sep or (wanted is not None and model not in wanted):
            continue
        per_version.setdefault(str(row[0]), {})[int(row[1])] = Counts(*(int(v) for v in row[2:]))
    if not per_version:
        return {}
    latency_q = select(_LATENCY.name, _LATENCY.bin, func.sum(_LATENCY.count)).where(
        _LATENCY.resolution == HOUR, _LATENCY.scope == "version", _LATENCY.metric == "predict",
        _LATENCY.start >= since, _LATENCY.start <= now,
        *_scope_filter(_LATENCY, None, per_version)).group_by(_LATENCY.name, _LATENCY.bin)
    hists: dict[str, Histogram] = {}
    for name, bin_index, count in conn.execute(latency_q):
        hists.setdefault(str(name), {})[int(bin_index)] = int(count)
    first = {name: float(min(hours)) for name, hours in per_version.items()}
    _refine_first_seen(conn, first, now=now)
    fleet: Series = {}
    fleet_q = select(_OUTCOME.start, *(func.sum(getattr(_OUTCOME, c)) for c in OUTCOME_COLUMNS)
                     ).where(_OUTCOME.resolution == HOUR, _OUTCOME.scope == "model",
                             _OUTCOME.start >= since, _OUTCOME.start <= now
                             ).group_by(_OUTCOME.start)
    for row in conn.execute(fleet_q):
        fleet[int(row[0])] = Counts(*(int(v or 0) for v in row[1:]))
    by_model: dict[str, list[VersionStats]] = {}
    for name, hourly in per_version.items():
        model, _, version = name.rpartition(":")
        total = sum(hourly.values(), Counts())
        by_model.setdefault(model, []).append(
            VersionStats(version, first[name], total, hists.get(name, {}), dict(hourly)))
    lineups: dict[str, Lineup] = {}
    for model, versions in by_model.items():
        versions.sort(key=lambda v: (v.first_seen, v.version))
        own: Series = {}
        for v in versions:
            for start, counts in v.hourly.items():
                _add(own, start, counts)
        peers = {start: _minus(counts, own.get(start, Counts()))
                 for start, counts in fleet.items()}
        lineups[model] = Lineup("model", model, tuple(versions), peers, "all other models",
                                float(since))
    return lineups


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
    counts: dict[tuple[str, str], Series] = {}
    hists: dict[tuple[str, str], Histogram] = {}
    models: dict[str, str] = {}
    for deployment, model, version, status, predict_time, first_seen, counted in (
            as_connection(db).execute(query)):
        key = (str(deployment), str(version) if version else "(none)")
        if model:
            models.setdefault(key[0], str(model))
        seen = float(first_seen if first_seen is not None else counted)
        first[key] = min(first.get(key, seen), seen)
        one = Counts(succeeded=1) if status == "succeeded" else Counts(failed=1)
        _add(counts.setdefault(key, {}), _hour(float(counted)), one)
        if predict_time is not None and predict_time >= 0:
            hist = hists.setdefault(key, {})
            b = latency_bin(float(predict_time))
            hist[b] = hist.get(b, 0) + 1
    per_deployment: dict[str, list[VersionStats]] = {}
    own: dict[str, Series] = {}
    for key, hourly in counts.items():
        deployment, version = key
        per_deployment.setdefault(deployment, []).append(VersionStats(
            version, first[key], sum(hourly.values(), Counts()), hists.get(key, {}), hourly))
        for start, c in hourly.items():
            _add(own.setdefault(deployment, {}), start, c)
    lineups: dict[str, Lineup] = {}
    for deployment, versions in per_deployment.items():
        versions.sort(key=lambda v: (v.first_seen, v.version))
        siblings = [d for d, m in models.items()
                    if d != deployment and m == models.get(deployment)]
        label = f"the other deployments of {models.get(deployment)}"
        if not siblings:
            siblings, label = [d for d in own if d != deployment], "all other deployments"
        peers: Series = {}
        for d in siblings:
            for start, c in own.get(d, {}).items():
                _add(peers, start, c)
        lineups[deployment] = Lineup("deployment", deployment, tuple(versions), peers, label,
                                     since)
    return lineups


def lineups(db: Db, *, scope: str, now: float, lookback: float) -> Mapping[str, Lineup]:
    if scope == "model":
        return model_lineups(db, now=now, lookback=lookback)
    if scope == "deployment":
        return deployment_lineups(db, now=now, lookback=lookback)
    raise ValueError("regression compares versions within a model or a deployment")
