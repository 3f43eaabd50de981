"""The demo's traffic plan: phases of rate and failure mix, pure and free of any clock."""

from __future__ import annotations

import random
from collections.abc import Sequence
from dataclasses import dataclass

# The model's failure outcomes the demo draws from. hang and crash stay out: either one takes
# the Cog server's single worker out of service, and the demo would stall instead of recover.
DEMO_FAILURES: tuple[str, ...] = ("error", "cuda_oom", "nan", "bad_return_type")


@dataclass(frozen=True)
class Phase:
    """One stretch of traffic: how often to predict and how many of those should fail."""

    name: str
    seconds: float | None  # None: until the demo stops
    rate: float  # predictions per second
    failure_rate: float  # share of predictions asked to fail
    note: str = ""
    failures: tuple[str, ...] = DEMO_FAILURES
    # End early once an alert is firing (after min_seconds), so a quick rule means a quick demo.
    ends_on_alert: bool = False
    min_seconds: float = 0.0


# Sized for the built-in rules (error rate > 20% over 10m with >= 20 predictions, no `for`) and
# for configs with `for` up to 1m and keep_firing_for up to 2m. 30 healthy predictions, then
# about 1/s at 85% failure: the rate crosses 20% some 10 s into the burst and stays far above it
# for the next minute, long enough for any such `for`. The burst stops early once the alert
# fires (but not before 55 s, so the alert stays up long enough to go and look at it). Recovery
# sends 3 successes a second, which pulls the 10-minute rate back under 20% within about a
# minute; the steady phase after it stays far below 20%, so keep_firing_for runs out there at
# the latest. Built-in rules: fires ~13 s into the burst and stays firing for a minute and a
# half or more, resolving within about three minutes of the start.
DEFAULT_PLAN: tuple[Phase, ...] = (
    Phase("healthy", 15.0, 2.0, 0.0, "every prediction succeeds"),
    Phase(
        "failure burst",
        80.0,
        1.0,
        0.85,
        "most predictions fail (error, CUDA OOM, NaN, bad return type)",
        ends_on_alert=True,
        min_seconds=55.0,
    ),
    Phase("recovery", 120.0, 3.0, 0.0, "a flood of successes pulls the error rate back down"),
    Phase("steady", None, 1.0, 0.02, "light healthy traffic until you stop the demo"),
)


def check_plan(plan: Sequence[Phase]) -> None:
    """Raise ValueError unless the plan has phases, each with a positive rate and a 0..1 mix."""
    if not plan:
        raise ValueError("a plan needs at least one phase")
    for phase in plan:
        if phase.rate <= 0:
            raise ValueError(f"phase {phase.name!r}: rate must be positive")
        if not 0.0 <= phase.failure_rate <= 1.0:
            raise ValueError(f"phase {phase.name!r}: failure_rate must be within 0..1")


def phase_at(plan: Sequence[Phase], elapsed: float) -> tuple[int, Phase] | None:
    """The phase a plan is in `elapsed` seconds after its start, or None once it is over."""
    if elapsed < 0:
        raise ValueError("elapsed must not be negative")
    start = 0.0
    for index, phase in enumerate(plan):
        if phase.seconds is None or elapsed < start + phase.seconds:
            return index, phase
        start += phase.seconds
    return None


def choose_outcome(phase: Phase, rng: random.Random) -> str:
    """The model outcome for the next prediction in `phase`."""
    if phase.failures and rng.random() < phase.failure_rate:
        return rng.choice(phase.failures)
    return "success"


def describe_phase(plan: Sequence[Phase], index: int) -> str:
    """The line announcing phase `index` of `plan`: its length, rate, mix and note."""
    phase = plan[index]
    length = "until stopped" if phase.seconds is None else f"up to {phase.seconds:.0f}s"
    return (
        f"phase {index + 1}/{len(plan)} {phase.name!r} ({length}): "
        f"{phase.rate:g}/s, {phase.failure_rate:.0%} failing"
        + (f": {phase.note}" if phase.note else "")
    )
