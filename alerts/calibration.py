"""Simulated behaviour of the regression test: how often it fires with no change, and how many
predictions of a worse version it needs, when the rule looks after every few predictions.

Seeded (random.Random), so a test or bench run is repeatable. Used by
tests/alerts/test_sequential.py and bench/bench_regression.py.
"""

from __future__ import annotations

import math
import random
from collections.abc import Callable
from dataclasses import dataclass

from hookwatch.alerts.sequential import log_evidence_rates, threshold

Test = Callable[[int, int, int, int], bool]  # (x0, n0, x1, n1) -> fires


def e_value_test(*, confidence: float, margin: float, min_predictions: int) -> Test:
    """The rule's test: evidence >= 1 / (1 - confidence), with the min_predictions guard."""
    needed = math.log(threshold(confidence))

    def fires(x0: int, n0: int, x1: int, n1: int) -> bool:
        return n1 >= min_predictions and log_evidence_rates(x0, n0, x1, n1, margin) >= needed

    return fires


def fixed_sample_test(*, confidence: float, margin: float, min_predictions: int) -> Test:
    """What the rule must not do: a one-sided two-proportion z-test at 1 - confidence,
    repeated at every look (valid once, not again and again)."""
    z_needed = _normal_quantile(confidence)

    def fires(x0: int, n0: int, x1: int, n1: int) -> bool:
        if n1 < min_predictions or n0 == 0:
            return False
        p0, p1 = x0 / n0, x1 / n1
        var = p0 * (1 - p0) / n0 + p1 * (1 - p1) / n1
        return var > 0 and (p1 - p0 - margin) / math.sqrt(var) >= z_needed

    return fires


def _normal_quantile(q: float) -> float:
    lo, hi = -10.0, 10.0
    for _ in range(100):
        mid = (lo + hi) / 2
        if 0.5 * math.erfc(-mid / math.sqrt(2)) < q:
            lo = mid
        else:
            hi = mid
    return (lo + hi) / 2


@dataclass(frozen=True)
class Run:
    """One simulated rollout: the old version's history, then the new version's stream."""

    fired_at: int | None  # predictions of the new version when the rule first fired


def simulate(test: Test, *, p_old: float, p_new: float, n_old: int, horizon: int,
             every: int, rng: random.Random) -> Run:
    """The old version's `n_old` predictions, then the new one's, looked at every `every`."""
    x0 = sum(rng.random() < p_old for _ in range(n_old))
    x1 = 0
    for n1 in range(1, horizon + 1):
        x1 += rng.random() < p_new
        if n1 % every == 0 and test(x0, n_old, x1, n1):
            return Run(n1)
    return Run(None)


@dataclass(frozen=True)
class Summary:
    runs: int
    fired: int
    delays: tuple[int, ...]  # sorted, of the runs that fired

    @property
    def rate(self) -> float:
        return self.fired / self.runs if self.runs else 0.0

    def delay(self, q: float) -> int | None:
        """The q-quantile of the predictions needed (over runs that fired)."""
        if not self.delays:
            return None
        return self.delays[min(len(self.delays) - 1, int(q * len(self.delays)))]


def many(test: Test, *, runs: int, p_old: float, p_new: float, n_old: int, horizon: int,
         every: int, seed: int = 1) -> Summary:
    rng = random.Random(seed)
    fired = [r.fired_at for r in (simulate(test, p_old=p_old, p_new=p_new, n_old=n_old,
                                           horizon=horizon, every=every, rng=rng)
                                  for _ in range(runs))]
    delays = tuple(sorted(f for f in fired if f is not None))
    return Summary(runs, len(delays), delays)
