"""Scopes of a prediction and the bucket increments its terminal outcome adds."""

from __future__ import annotations

import dataclasses
import math
import operator
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

RESOLUTIONS = (60, 3600, 86400)
"""Bucket widths kept for every scope: minutes for short windows, hours and days for long ones."""
LATENCY_RESOLUTIONS = RESOLUTIONS[:2]
"""Latency histograms have no daily rows: daily rows feed the history bar only."""
SCOPES = ("model", "deployment", "version")
OUTCOMES = ("succeeded", "failed", "canceled", "aborted")
HIST_BINS = 64
"""Half-octave bins over milliseconds: bin b covers [2**(b/2), 2**((b+1)/2)) ms, so its middle
is within 2**0.25 (19%) of any value in it (storage.percentiles.RELATIVE_ERROR)."""
LATENCY_METRICS = ("predict", "queue", "total")
"""Latency metrics: metrics.predict_time, started - created, completed - created."""
METRIC_OFFSETS = {metric: i * HIST_BINS for i, metric in enumerate(LATENCY_METRICS)}
"""A metric's first index in a packed histogram (storage.packed): its bins follow."""


def scope_names(
    model: str | None, deployment: str | None, version: str | None
) -> list[tuple[str, str]]:
    """(scope, name) pairs a prediction counts under. A hidden version has no scope of its own."""
    pairs: list[tuple[str, str]] = []
    if model:
        pairs.append(("model", model))
    if deployment:
        pairs.append(("deployment", deployment))
    if version and version != "hidden":
        pairs.append(("version", f"{model}:{version}" if model else version))
    return pairs


def latency_bin(seconds: float) -> int:
    if not math.isfinite(seconds):
        seconds = 0.0  # the receiver refuses such values; never let one reach log2
    ms = max(seconds * 1000.0, 1.0)
    return min(int(math.log2(ms) * 2), HIST_BINS - 1)


def bin_value(bin_index: int) -> float:
    """Representative seconds of a bin: its geometric middle."""
    return float(2 ** ((bin_index + 0.5) / 2) / 1000.0)


def percentile(histogram: dict[int, int], q: float) -> float | None:
    """Estimate the q-quantile (0..1) from bin counts; None without data."""
    total = sum(histogram.values())
    if total == 0:
        return None
    rank = q * total
    seen = 0
    for bin_index in sorted(histogram):
        seen += histogram[bin_index]
        if seen >= rank:
            return bin_value(bin_index)
    return bin_value(max(histogram))


@dataclass(frozen=True, slots=True)
class Counted:
    """A prediction whose terminal outcome was counted by this batch."""

    prediction_id: str
    status: str
    model: str | None
    deployment: str | None
    version: str | None
    predict_time: float | None
    queue_time: float | None
    error: str | None
    total_time: float | None = None  # completed_at - created_at

    def __reduce__(self) -> tuple[type[Counted], tuple[Any, ...]]:
        # Sent back by the writer process after every batch (see storage.batch.NewEvent).
        return Counted, _counted_fields(self)


_counted_fields = operator.attrgetter(*(f.name for f in dataclasses.fields(Counted)))


BucketKey = tuple[int, int, str, str]  # resolution, start, scope, name


ScopeKey = tuple[str, str]  # scope, name
PackedCounts = dict[int, int]  # packed index (METRIC_OFFSETS[metric] + bin) -> count


@dataclass(slots=True)
class ScopeFold:
    """One scope's increments: outcome rows and latency histograms per minute start. Hours and
    days are sums of minutes, so a fold over many batches (storage.tally) keeps minutes only
    and spreads them once, when written."""

    minutes: dict[int, list[float]] = dataclasses.field(default_factory=dict)
    hist: dict[int, PackedCounts] = dataclasses.field(default_factory=dict)

    def rows(self) -> int:
        """How many bucket rows this spreads to."""
        return len(self.minutes) * len(RESOLUTIONS)


def bucket_increments(
    counted: Iterable[Counted], at: float
) -> tuple[dict[BucketKey, list[float]], dict[BucketKey, PackedCounts]]:
    """Aggregate outcome and latency increments for one batch, keyed for upserts.

    Outcome rows are [succeeded, failed, canceled, aborted, other, pt_sum, pt_count]; every
    histogram's key has an outcome row.
    """
    folds: dict[ScopeKey, ScopeFold] = {}
    count_minutes(counted, at, folds)
    return spread(folds.items())


_COLUMN = {status: i for i, status in enumerate(OUTCOMES)}  # outcome row column; others: 4
_PREDICT, _QUEUE, _TOTAL = (METRIC_OFFSETS[m] for m in LATENCY_METRICS)


def count_minutes(counted: Iterable[Counted], at: float, folds: dict[ScopeKey, ScopeFold]) -> int:
    """Add outcomes counted at `at` to the folds of their scopes, in place (straight into the
    writer's tally: no per-batch dicts to merge afterwards). Returns how many minute keys
    were new: a fold grows by len(RESOLUTIONS) bucket rows for each."""
    when = int(at)
    minute = when - when % 60
    new = 0
    for item in counted:
        column = _COLUMN.get(item.status, 4)
        bins = [
            offset + latency_bin(value)
            for offset, value in ((_PREDICT, item.predict_time), (_QUEUE, item.queue_time),
                                  (_TOTAL, item.total_time))
            if value is not None and value >= 0
        ]
        for key in scope_names(item.model, item.deployment, item.version):
            fold = folds.get(key)
            if fold is None:
                fold = folds[key] = ScopeFold()
            row = fold.minutes.get(minute)
            if row is None:
                row = fold.minutes[minute] = [0, 0, 0, 0, 0, 0.0, 0]
                new += 1
            row[column] += 1
            if item.predict_time is not None:
                row[5] += item.predict_time
                row[6] += 1
            if bins:
                hist = fold.hist.get(minute)
                if hist is None:
                    hist = fold.hist[minute] = {}
                for index in bins:
                    hist[index] = hist.get(index, 0) + 1
    return new


def spread(folds: Iterable[tuple[ScopeKey, ScopeFold]]
           ) -> tuple[dict[BucketKey, list[float]], dict[BucketKey, PackedCounts]]:
    """Minute rows as the rows of every resolution (histograms: LATENCY_RESOLUTIONS)."""
    outcomes: dict[BucketKey, list[float]] = {}
    latency: dict[BucketKey, PackedCounts] = {}
    for (scope, name), fold in folds:
        for minute, row in fold.minutes.items():
            for resolution in RESOLUTIONS:
                key = (resolution, minute - minute % resolution, scope, name)
                mine = outcomes.get(key)
                if mine is None:
                    outcomes[key] = list(row)
                else:
                    for i, value in enumerate(row):
                        mine[i] += value
        for minute, hist in fold.hist.items():
            for resolution in LATENCY_RESOLUTIONS:
                lkey = (resolution, minute - minute % resolution, scope, name)
                have = latency.get(lkey)
                if have is None:
                    latency[lkey] = dict(hist)
                else:
                    for index, count in hist.items():
                        have[index] = have.get(index, 0) + count
    return outcomes, latency
