"""The regression rule's verdict: is a model's (or deployment's) newest version worse than
the version before it, with anytime-valid evidence (alerts.sequential)?

breach True when the evidence reaches 1 / (1 - confidence); False once the new version's
rate (or median) is back within the margin of the old one's, or when no version is new
within the lookback (or only one was seen in it); None (no verdict, the alert stays as it
is) in between, under `min_predictions`, or while the guard against time confounding holds:
the peers (the rest of the fleet for a model, the model's other deployments for a
deployment) worsened by the margin over the same hours, so the new version's first hours
overlap a wider outage.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from hookwatch.alerts.duration import format_duration
from hookwatch.alerts.sequential import (
    Evidence,
    evidence,
    log_evidence_above,
    log_evidence_rates,
)
from hookwatch.storage.rates import Counts
from hookwatch.storage.rollups import percentile
from hookwatch.storage.versions import Histogram, Lineup, VersionStats


@dataclass(frozen=True)
class RegressionSpec:
    """What a regression rule asks (the rule's keys, as the judge needs them)."""

    metric: str = "error_rate"
    confidence: float = 0.99
    margin: float = 0.02
    min_predictions: int = 20
    lookback: float = 86400.0


@dataclass(frozen=True)
class Outcome:
    breach: bool | None
    evidence: float | None
    counts: Counts | None
    describe: Callable[[], str]


def short(version: str) -> str:
    """Replicate version ids are 64 hex digits; eight tell them apart in a message."""
    return version[:8] if len(version) > 12 else version


def pct(rate: float) -> str:
    text = f"{rate:.1%}"
    return text.replace(".0%", "%")


def _evidence_text(e: Evidence) -> str:
    v = e.value
    value = f"{v:.3g}" if v < 1000 else f"{v:,.0f}" if v < 1e6 else f"{v:.1e}"
    return f"evidence {value} (fires at {e.needed:g})"


def confounded(lineup: Lineup, old: VersionStats, new: VersionStats, spec: RegressionSpec,
               now: float) -> str | None:
    """Why the comparison cannot be trusted now, or None: the peers' error rate over the new
    version's hours is worse than over the old version's hours by the margin."""
    before = lineup.peers(old.first_seen, new.first_seen)
    after = lineup.peers(new.first_seen, now + 3600)
    if min(before.decided, after.decided) < spec.min_predictions:
        return None
    rate_before, rate_after = before.error_rate or 0.0, after.error_rate or 0.0
    if rate_after - rate_before > spec.margin:
        return (f"{lineup.peers_label} worsened too, {pct(rate_before)} to {pct(rate_after)} "
                f"since {short(new.version)} appeared: no verdict while they do")
    return None


def judge_regression(spec: RegressionSpec, lineup: Lineup | None, now: float) -> Outcome:
    pair = lineup.newest_pair() if lineup is not None else None
    if lineup is None or pair is None:  # clear: a firing alert whose old version aged out
        span = format_duration(spec.lookback)  # of the lookback resolves
        return Outcome(False, None, None,
                       lambda: f"one version in the last {span}, nothing to compare")
    old, new = pair
    if new.first_seen <= lineup.since:
        span = format_duration(spec.lookback)
        return Outcome(False, None, None,
                       lambda: f"no version first seen in the last {span}")
    if spec.metric == "predict_time":
        return _predict_time(spec, old, new)
    return _error_rate(spec, lineup, old, new, now)


def _error_rate(spec: RegressionSpec, lineup: Lineup, old: VersionStats, new: VersionStats,
                now: float) -> Outcome:
    x0, n0 = old.counts.failed, old.counts.decided
    x1, n1 = new.counts.failed, new.counts.decided

    def seen() -> str:
        return (f"version {short(new.version)}: {x1} of {n1} failed"
                f"{f' ({pct(x1 / n1)})' if n1 else ''} against {x0} of {n0}"
                f"{f' ({pct(x0 / n0)})' if n0 else ''} for {short(old.version)}")

    if n1 < spec.min_predictions or n0 == 0:
        return Outcome(None, None, new.counts,
                       lambda: f"{seen()}: under {spec.min_predictions} predictions on the new "
                               "version (or none on the old), no verdict")
    e = evidence(log_evidence_rates(x0, n0, x1, n1, spec.margin), spec.confidence)

    def text() -> str:
        return f"{seen()}; {_evidence_text(e)}"

    if e.reached:
        why = confounded(lineup, old, new, spec, now)
        if why is not None:
            return Outcome(None, e.value, new.counts, lambda: f"{text()}; {why}")
        return Outcome(True, e.value, new.counts, text)
    within = x1 / n1 <= x0 / n0 + spec.margin
    return Outcome(False if within else None, e.value, new.counts, text)


def lower_edge(bin_index: int) -> float:
    """Seconds where a latency bin starts (storage.rollups.latency_bin)."""
    return float(2 ** (bin_index / 2) / 1000.0)


def above(hist: Histogram, reference: float) -> int:
    """Predictions surely slower than `reference`: in bins that start at or above it (a bin
    straddling it counts as not above, so the test stays valid with binned times)."""
    return sum(n for b, n in hist.items() if lower_edge(b) >= reference)


def _predict_time(spec: RegressionSpec, old: VersionStats, new: VersionStats) -> Outcome:
    n0, n1 = old.predict_count, new.predict_count
    m0, m1 = percentile(old.predict, 0.5), percentile(new.predict, 0.5)

    def seen() -> str:
        def med(m: float | None) -> str:
            return f"{m:.3g} s" if m is not None else "no"
        return (f"version {short(new.version)}: median predict time {med(m1)} over {n1} "
                f"against {med(m0)} over {n0} for {short(old.version)}")

    if n1 < spec.min_predictions or n0 < spec.min_predictions or m0 is None or m1 is None:
        return Outcome(None, None, new.counts,
                       lambda: f"{seen()}: under {spec.min_predictions} timed predictions on "
                               "each side, no verdict")
    reference = (1.0 + spec.margin) * m0
    k = above(new.predict, reference)
    e = evidence(log_evidence_above(k, n1), spec.confidence)

    def text() -> str:
        return (f"{seen()}; {k} of {n1} slower than {1 + spec.margin:g} x the old median; "
                f"{_evidence_text(e)}")

    if e.reached:
        return Outcome(True, e.value, new.counts, text)
    return Outcome(False if m1 <= reference else None, e.value, new.counts, text)
