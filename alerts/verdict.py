"""A rule's verdict on one scope from windowed counts: breach, clear, or no verdict."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from functools import cached_property

from hookwatch.alerts.duration import format_duration
from hookwatch.alerts.latency import LatencyKey, judge_latency, latency_key
from hookwatch.alerts.new_error import NewErrors, judge_new_errors
from hookwatch.alerts.pricing import Pricing
from hookwatch.alerts.regression import RegressionSpec, judge_regression
from hookwatch.alerts.rules import (
    BurnRateRule,
    BurnWindow,
    ErrorRateRule,
    LatencyRule,
    NewErrorRule,
    NoTrafficRule,
    RegressionRule,
    Rule,
    SpendRule,
    StuckRule,
)
from hookwatch.alerts.spend import judge_spend
from hookwatch.storage.percentiles import Histogram
from hookwatch.storage.rates import Counts, ScopeKey
from hookwatch.storage.usage import Usage
from hookwatch.storage.versions import Lineup

StuckKey = tuple[float, float]  # (window, lookback) of a stuck rule
LineupKey = tuple[str, float]  # (scope, lookback) of a regression rule


@dataclass(frozen=True)
class Inputs:
    """What the evaluation reads: counts per window, stuck counts per (window, lookback),
    versions side by side, new error fingerprints, latency histograms per (metric, window),
    billed seconds per window, and the prices."""

    counts: Mapping[float, Mapping[ScopeKey, Counts]] = field(default_factory=dict)
    stuck: Mapping[StuckKey, Mapping[ScopeKey, int]] = field(default_factory=dict)
    lineups: Mapping[LineupKey, Mapping[str, Lineup]] = field(default_factory=dict)
    new_errors: Mapping[str, NewErrors] = field(default_factory=dict)  # by rule name
    now: float = 0.0  # when the inputs were read (regression's guard sums hours up to it)
    latency: Mapping[LatencyKey, Mapping[ScopeKey, Histogram]] = field(default_factory=dict)
    usage: Mapping[float, Mapping[ScopeKey, Usage]] = field(default_factory=dict)
    pricing: Pricing = field(default_factory=Pricing)

    def count(self, window: float, key: ScopeKey) -> Counts:
        return self.counts.get(window, {}).get(key, Counts())

    def names(self, scope: str) -> set[str]:
        """Every name of `scope` with data in any input."""
        return self._names.get(scope, set())

    @cached_property
    def _names(self) -> dict[str, set[str]]:
        found: dict[str, set[str]] = {}
        keys: set[ScopeKey] = set().union(*self.counts.values(), *self.stuck.values(),
                                          *self.latency.values(), *self.usage.values())
        for scope, name in keys:
            found.setdefault(scope, set()).add(name)
        for (scope, _lookback), lineups in self.lineups.items():
            found.setdefault(scope, set()).update(lineups)
        for errors in self.new_errors.values():
            for scope, name in errors.fresh:
                found.setdefault(scope, set()).add(name)
        return found


@dataclass(frozen=True)
class Verdict:
    breach: bool | None  # None: no verdict (too little data), the alert stays as it is
    value: float | None = None
    counts: Counts | None = None
    describe: Callable[[], str] = str  # the one-line text, built only when it is stored
    renew_after: float | None = None  # new_error: a firing alert re-triggers for news after it

    @property
    def summary(self) -> str:
        return self.describe()


def _pct(value: float) -> str:
    return f"{value:.1%}".replace(".0%", "%")


def _error_rate(rule: ErrorRateRule, key: ScopeKey, inputs: Inputs) -> Verdict:
    counts = inputs.count(rule.window, key)
    # bad / (succeeded + failed + the listed outcomes): the default ("failed",) keeps
    # failed / (succeeded + failed) (DESIGN.md, "Rules, new kinds and keys").
    if rule.outcomes == ("failed",):
        bad, judged = counts.failed, counts.decided
    else:
        bad = sum(getattr(counts, outcome) for outcome in rule.outcomes)
        judged = counts.decided + sum(getattr(counts, o) for o in rule.outcomes
                                      if o != "failed")
    rate = bad / judged if judged else None
    what = "error" if rule.outcomes == ("failed",) else "/".join(rule.outcomes)

    def seen() -> str:
        return (f"{bad} of {judged} {' or '.join(rule.outcomes)} over "
                f"{format_duration(rule.window)}")

    if rate is None or judged < rule.min_predictions:
        return Verdict(None, rate, counts, lambda: f"{seen()}: under {rule.min_predictions} "
                                                   "predictions, no verdict")
    return Verdict(rate > rule.threshold, rate, counts,
                   lambda: f"{what} rate {_pct(rate)} ({seen()}), "
                           f"threshold {_pct(rule.threshold)}")


def _burn_rate(rule: BurnRateRule, key: ScopeKey, inputs: Inputs) -> Verdict:
    budget = 1.0 - rule.slo
    verdicts: list[bool] = []
    worst: tuple[float, Callable[[], str], Counts] | None = None
    for pair in rule.burn_windows:
        long, short = inputs.count(pair.long, key), inputs.count(pair.short, key)
        if long.error_rate is None or long.decided < rule.min_predictions:
            continue
        burn_long = long.error_rate / budget
        burn_short = (short.error_rate or 0.0) / budget
        # Both windows must burn faster than the factor: the long one proves it matters,
        # the short one that it is still happening (SRE workbook, multiwindow alerts).
        verdicts.append(burn_long > pair.factor and burn_short > pair.factor)
        burn = min(burn_long, burn_short)
        if worst is None or burn / pair.factor > worst[0]:
            worst = (burn / pair.factor, _burn_text(rule, pair, burn_long, burn_short), long)
    if not verdicts or worst is None:
        return Verdict(None, None, None,
                       lambda: f"under {rule.min_predictions} predictions in every long "
                               "window, no verdict")
    return Verdict(any(verdicts), worst[0], worst[2], worst[1])


def _burn_text(rule: BurnRateRule, pair: BurnWindow, long: float, short: float
               ) -> Callable[[], str]:
    return lambda: (f"burn rate {long:.1f}x over {format_duration(pair.long)} and "
                    f"{short:.1f}x over {format_duration(pair.short)} (page at "
                    f"{pair.factor:g}x) of the {_pct(rule.slo)} SLO")


def _stuck(rule: StuckRule, key: ScopeKey, inputs: Inputs) -> Verdict:
    n = inputs.stuck.get((rule.window, rule.lookback), {}).get(key, 0)
    return Verdict(n >= rule.threshold, float(n), None,
                   lambda: f"{n} prediction{'s' if n != 1 else ''} not finished after "
                           f"{format_duration(rule.window)}")


def _no_traffic(rule: NoTrafficRule, key: ScopeKey, inputs: Inputs) -> Verdict:
    recent = inputs.count(rule.window, key)
    before = inputs.count(rule.lookback, key)
    span, lookback = format_duration(rule.window), format_duration(rule.lookback)
    if before.total == 0:
        return Verdict(None, 0.0, recent,
                       lambda: f"no traffic in the last {lookback}, no verdict")
    if recent.total:
        return Verdict(False, float(recent.total), recent,
                       lambda: f"{recent.total} finished predictions in the last {span}")
    return Verdict(True, 0.0, before, lambda: f"no finished predictions for {span} "
                                              f"({before.total} in the last {lookback})")


def _regression(rule: RegressionRule, key: ScopeKey, inputs: Inputs) -> Verdict:
    spec = RegressionSpec(metric=rule.metric, confidence=rule.confidence, margin=rule.margin,
                          min_predictions=rule.min_predictions, lookback=rule.lookback)
    lineup = inputs.lineups.get((rule.scope, rule.lookback), {}).get(key[1])
    out = judge_regression(spec, lineup, inputs.now)
    return Verdict(out.breach, out.evidence, out.counts, out.describe)


def _new_error(rule: NewErrorRule, key: ScopeKey, inputs: Inputs) -> Verdict:
    out = judge_new_errors(inputs.new_errors.get(rule.name), key)
    return Verdict(out.breach, out.value, None, out.describe, renew_after=out.renew_after)


def _latency(rule: LatencyRule, key: ScopeKey, inputs: Inputs) -> Verdict:
    breach, value, text = judge_latency(rule, inputs.latency.get(latency_key(rule), {}).get(key))
    return Verdict(breach, value, None, text)


def _spend(rule: SpendRule, key: ScopeKey, inputs: Inputs) -> Verdict:
    usage = inputs.usage.get(rule.window, {}).get(key)
    breach, value, text = judge_spend(rule, key, usage, inputs.pricing)
    return Verdict(breach, value, None, text)


def judge(rule: Rule, key: ScopeKey, inputs: Inputs) -> Verdict:
    # One case per rule kind (alerts/rules.py AnyRule); mypy checks each gets its own type.
    match rule:
        case ErrorRateRule():
            return _error_rate(rule, key, inputs)
        case BurnRateRule():
            return _burn_rate(rule, key, inputs)
        case StuckRule():
            return _stuck(rule, key, inputs)
        case NoTrafficRule():
            return _no_traffic(rule, key, inputs)
        case RegressionRule():
            return _regression(rule, key, inputs)
        case NewErrorRule():
            return _new_error(rule, key, inputs)
        case LatencyRule():
            return _latency(rule, key, inputs)
        case SpendRule():
            return _spend(rule, key, inputs)
