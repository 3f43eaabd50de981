"""Anytime-valid evidence (e-values) that a new version is worse than the one before it.

Rules are evaluated again and again while data accumulate, so a fixed-sample test (Fisher,
chi-squared) checked at every evaluation raises false alarms far above its nominal level. An
e-process E_n can be checked after every prediction: under the null hypothesis
P(E_n >= 1/alpha for some n) <= alpha (Ville's inequality), so firing when the evidence reaches
1 / (1 - confidence) keeps the false-alarm rate at or under 1 - confidence, however often and
for however long the rule looks.

The construction is the sequential likelihood ratio of "universal inference" (Wasserman,
Ramdas and Balakrishnan, PNAS 2020, section 7), in the mixture form Lindon and Malek use for
count data ("Anytime-Valid Inference for Multinomial Count Data", NeurIPS 2022):

    E_n = m(data) / sup over the null of L(data)

where m is a Beta-binomial mixture likelihood (a fixed prior, so m is the product of the
posterior predictive probabilities, one prediction at a time). For every parameter p in the
null, E_n <= m / L_p, a nonnegative martingale with mean 1 under p; so E_n is an e-process
for the whole composite null, whatever order the two versions' predictions arrive in.

- Error rates: two independent Bernoulli streams (old, new); the null is
  p_new <= p_old + margin; each stream gets its own Beta mixture.
- Median predict_time: a sign test. Each new prediction is "above" when it is slower than
  (1 + margin) x the old median; the null is P(above) <= 1/2.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import lru_cache

# Fixed before any data (a prior chosen from the data would void the guarantee). Error
# rates: Beta(1/2, 5), mean 9%, because most error rates are small. The sign test's share
# "above" sits near 1/2: Jeffreys' Beta(1/2, 1/2).
PRIOR_A = 0.5
PRIOR_B = 5.0
SIGN_PRIOR = (0.5, 0.5)
_SEARCH_STEPS = 64  # golden-section steps on a concave function: 0.618**64 ~ 1e-13 of [0, 1]


def threshold(confidence: float) -> float:
    """The evidence at which a rule with this confidence fires: 1 / (1 - confidence)."""
    if not 0.0 < confidence < 1.0:
        raise ValueError("confidence must be in (0, 1)")
    return 1.0 / (1.0 - confidence)


def _log_beta(a: float, b: float) -> float:
    return math.lgamma(a) + math.lgamma(b) - math.lgamma(a + b)


def log_mixture(successes: int, trials: int, a: float = PRIOR_A, b: float = PRIOR_B) -> float:
    """log of the Beta(a, b) mixture probability of one sequence with these counts."""
    return _log_beta(successes + a, trials - successes + b) - _log_beta(a, b)


def log_likelihood(successes: int, trials: int, p: float) -> float:
    """log p^k (1-p)^(n-k), with 0 log 0 = 0."""
    failures = trials - successes
    if p <= 0.0:
        return 0.0 if successes == 0 else -math.inf
    if p >= 1.0:
        return 0.0 if failures == 0 else -math.inf
    return successes * math.log(p) + failures * math.log1p(-p)


def _null_max_two_sample(x0: int, n0: int, x1: int, n1: int, margin: float) -> float:
    """max log L(p0, p1) over p1 <= p0 + margin (the null of "not worse by the margin")."""
    p0 = x0 / n0 if n0 else 0.0
    p1 = x1 / n1 if n1 else 0.0
    if p1 <= p0 + margin:
        return log_likelihood(x0, n0, p0) + log_likelihood(x1, n1, p1)
    if margin >= 1.0:
        return log_likelihood(x0, n0, p0) + log_likelihood(x1, n1, min(p1, 1.0))

    # The unconstrained maximum is outside the null, so the constrained one lies on its edge
    # p1 = p0 + margin, where the log-likelihood is concave in p0.
    def edge(p: float) -> float:
        return log_likelihood(x0, n0, p) + log_likelihood(x1, n1, p + margin)

    # Golden-section search: one evaluation a step, the bracket shrinks 0.618x each time.
    lo, hi = 0.0, 1.0 - margin
    ratio = (math.sqrt(5.0) - 1.0) / 2.0
    left, right = hi - ratio * (hi - lo), lo + ratio * (hi - lo)
    f_left, f_right = edge(left), edge(right)
    for _ in range(_SEARCH_STEPS):
        if f_left < f_right:
            lo, left, f_left = left, right, f_right
            right = lo + ratio * (hi - lo)
            f_right = edge(right)
        else:
            hi, right, f_right = right, left, f_left
            left = hi - ratio * (hi - lo)
            f_left = edge(left)
    return max(f_left, f_right, edge(0.0), edge(1.0 - margin))


@lru_cache(maxsize=16384)  # the evaluator asks again with the same counts every 15 s
def log_evidence_rates(x0: int, n0: int, x1: int, n1: int, margin: float = 0.0) -> float:
    """log E that the new failure rate (x1 of n1) exceeds the old (x0 of n0) by more than
    `margin` (absolute)."""
    if not 0 <= x0 <= n0 or not 0 <= x1 <= n1:
        raise ValueError("counts must satisfy 0 <= failures <= trials")
    if margin < 0:
        raise ValueError("margin must be >= 0")
    mixture = log_mixture(x0, n0) + log_mixture(x1, n1)
    return mixture - _null_max_two_sample(x0, n0, x1, n1, margin)


@lru_cache(maxsize=16384)
def log_evidence_above(above: int, trials: int) -> float:
    """log E that more than half of the new predictions are above the reference (a sign
    test of P(above) <= 1/2)."""
    if not 0 <= above <= trials:
        raise ValueError("counts must satisfy 0 <= above <= trials")
    p = min(above / trials, 0.5) if trials else 0.5
    return log_mixture(above, trials, *SIGN_PRIOR) - log_likelihood(above, trials, p)


@dataclass(frozen=True)
class Evidence:
    """An e-value and the threshold it is compared with."""

    value: float
    needed: float

    @property
    def reached(self) -> bool:
        return self.value >= self.needed


def evidence(log_e: float, confidence: float) -> Evidence:
    # exp overflows past ~709; anything that large is "far past the threshold" anyway.
    return Evidence(math.exp(min(log_e, 700.0)), threshold(confidence))
