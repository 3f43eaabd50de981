"""The anytime-valid evidence: exact cases, and its false alarms and detection delays measured
by simulating rollouts that the rule looks at again and again."""

from __future__ import annotations

import math

import pytest

from hookwatch.alerts.calibration import e_value_test, fixed_sample_test, many
from hookwatch.alerts.sequential import (
    evidence,
    log_evidence_above,
    log_evidence_rates,
    log_likelihood,
    log_mixture,
    threshold,
)


def e(x0: int, n0: int, x1: int, n1: int, margin: float = 0.02) -> float:
    return math.exp(log_evidence_rates(x0, n0, x1, n1, margin))


def test_exact_cases_from_the_issue() -> None:
    assert evidence(log_evidence_rates(3, 300, 10, 40, 0.02), 0.99).reached
    assert e(3, 300, 10, 40) > 100
    assert not evidence(log_evidence_rates(3, 300, 0, 40, 0.02), 0.99).reached
    assert e(3, 300, 0, 40) < 0.1
    assert e(3, 300, 3, 40) < 1  # 7.5% against 1%: suggestive, far from proof at 40


def test_evidence_grows_with_the_gap_and_with_data() -> None:
    assert e(3, 300, 6, 40) < e(3, 300, 8, 40) < e(3, 300, 10, 40)
    assert e(3, 300, 10, 40) < e(3, 300, 25, 100) < e(3, 300, 50, 200)
    # within the margin there is no evidence at all: the null's maximum is the data's
    assert e(30, 1000, 40, 1000, margin=0.02) <= 1.0
    # the margin is absolute: the same counts prove less against a wider margin
    assert e(3, 300, 10, 40, margin=0.1) < e(3, 300, 10, 40, margin=0.02)


def test_null_maximum_is_found_on_the_edge() -> None:
    """The e-value's denominator must be the null's maximum: a grid never beats it."""
    x0, n0, x1, n1, margin = 3, 300, 10, 40, 0.02
    best = max(log_likelihood(x0, n0, p) + log_likelihood(x1, n1, p + margin)
               for p in (i / 100_000 for i in range(0, 98_001)))
    mixture = log_mixture(x0, n0) + log_mixture(x1, n1)
    assert log_evidence_rates(x0, n0, x1, n1, margin) == pytest.approx(mixture - best, abs=1e-6)


def test_sign_test() -> None:
    assert math.exp(log_evidence_above(20, 40)) < 1  # half above: no evidence
    assert math.exp(log_evidence_above(10, 40)) < 1
    assert math.exp(log_evidence_above(36, 40)) > 100
    assert threshold(0.99) == pytest.approx(100.0)
    with pytest.raises(ValueError):
        threshold(1.0)


def test_small_samples_below_the_guard_never_fire() -> None:
    fires = e_value_test(confidence=0.99, margin=0.02, min_predictions=20)
    for n1 in range(1, 20):
        for x1 in range(n1 + 1):
            assert not fires(0, 10_000, x1, n1)
    assert fires(0, 10_000, 20, 20)


@pytest.mark.parametrize(("confidence", "margin", "p_old", "p_new"), [
    (0.9, 0.0, 0.05, 0.05),      # no change, no margin, a loose confidence: many chances
    (0.99, 0.02, 0.01, 0.03),    # the worst null the rule allows: worse by the margin exactly
    (0.99, 0.0, 0.2, 0.2),
])
def test_false_alarm_rate_under_no_change(confidence: float, margin: float, p_old: float,
                                          p_new: float) -> None:
    """Looking every 10 predictions up to 1,500: the share of rollouts that ever fire."""
    fires = e_value_test(confidence=confidence, margin=margin, min_predictions=20)
    summary = many(fires, runs=300, p_old=p_old, p_new=p_new, n_old=500, horizon=1500,
                   every=10, seed=7)
    assert summary.rate <= 1 - confidence


def test_the_simulation_catches_a_test_that_peeks() -> None:
    """The same simulation shows a fixed-sample test checked at every look over its level, so
    the false-alarm test above can fail."""
    fires = fixed_sample_test(confidence=0.9, margin=0.0, min_predictions=20)
    summary = many(fires, runs=300, p_old=0.05, p_new=0.05, n_old=500, horizon=1500,
                   every=10, seed=7)
    assert summary.rate > 0.1


def test_detection_delay() -> None:
    fires = e_value_test(confidence=0.99, margin=0.02, min_predictions=20)
    big = many(fires, runs=100, p_old=0.01, p_new=0.25, n_old=1000, horizon=1000, every=10,
               seed=3)
    assert big.rate == 1.0
    assert (big.delay(0.5) or 0) <= 60 and (big.delay(0.9) or 0) <= 100
    # 1% -> 5% is four points; against a margin of two it takes thousands of predictions
    # (bench/bench_regression.py prints them), so this case asks for a one-point margin.
    finer = e_value_test(confidence=0.99, margin=0.01, min_predictions=20)
    small = many(finer, runs=40, p_old=0.01, p_new=0.05, n_old=10_000, horizon=5000,
                 every=50, seed=3)
    assert small.rate >= 0.9
    assert (small.delay(0.5) or 10**9) <= 1500


def test_counts_are_checked() -> None:
    with pytest.raises(ValueError):
        log_evidence_rates(5, 4, 0, 1)
    with pytest.raises(ValueError):
        log_evidence_rates(0, 4, 0, 1, margin=-0.1)
