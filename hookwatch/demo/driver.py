"""The traffic loop: submits predictions at each phase's rate on an injected clock, no network."""

from __future__ import annotations

import random
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from hookwatch.demo.console import at
from hookwatch.demo.plan import Phase, check_plan, choose_outcome, describe_phase


class SubmitError(Exception):
    """A prediction could not be handed to the Cog server (busy, down, bad answer)."""


@dataclass
class DriverStats:
    """What a run sent and what the Cog server answered."""

    sent: int = 0
    statuses: Counter[str] = field(default_factory=Counter)  # what the Cog server answered
    submit_errors: int = 0
    phases: list[str] = field(default_factory=list)

    def summary(self) -> str:
        parts = ", ".join(f"{n} {s}" for s, n in sorted(self.statuses.items()))
        extra = f", {self.submit_errors} not accepted" if self.submit_errors else ""
        return f"{self.sent} predictions ({parts or 'none answered'}{extra})"


class Driver:
    """Runs a plan: submits predictions at each phase's rate. No clock or network of its own."""

    def __init__(
        self,
        plan: Sequence[Phase],
        submit: Callable[[str, int], str],
        *,
        now: Callable[[], float],
        sleep: Callable[[float], None],
        rng: random.Random,
        log: Callable[[str], None],
        tick: Callable[[float], None] | None = None,
        alert_firing: Callable[[], bool] = lambda: False,
        tick_interval: float = 2.0,
        report_interval: float = 15.0,
        max_sleep: float = 0.5,
    ) -> None:
        check_plan(plan)
        self.plan = list(plan)
        self.submit = submit
        self.now = now
        self.sleep = sleep
        self.rng = rng
        self.log = log
        self.tick = tick
        self.alert_firing = alert_firing
        self.tick_interval = tick_interval
        self.report_interval = report_interval
        self.max_sleep = max_sleep
        self.stats = DriverStats()

    def run(
        self, duration: float | None = None, should_stop: Callable[[], bool] = lambda: False
    ) -> DriverStats:
        """Drive until the plan ends, `duration` seconds pass, or should_stop() says so."""
        start = self.now()
        index = 0
        phase_start = start
        next_due = start
        next_tick = start
        next_report = start + self.report_interval
        self._announce(0, 0.0)
        while True:
            t = self.now()
            elapsed = t - start
            if (duration is not None and elapsed >= duration) or should_stop():
                break
            if self.tick is not None and t >= next_tick:
                self.tick(elapsed)
                next_tick = t + self.tick_interval
            if t >= next_report:
                self.log(at(elapsed, f"sent {self.stats.summary()}"))
                next_report = t + self.report_interval
            phase = self.plan[index]
            in_phase = t - phase_start
            timed_out = phase.seconds is not None and in_phase >= phase.seconds
            cut_short = (
                phase.ends_on_alert and in_phase >= phase.min_seconds and self.alert_firing()
            )
            if timed_out or cut_short:
                if index + 1 == len(self.plan):
                    break
                index += 1
                phase_start = t
                next_due = t
                if cut_short and not timed_out:
                    self.log(at(elapsed, f"the alert is firing: ending {phase.name!r} early"))
                self._announce(index, elapsed)
                continue
            if t >= next_due:
                self._send_one(phase)
                # Keep to the rate, but never race to catch up after a slow prediction.
                next_due = max(next_due + 1.0 / phase.rate, t)
                continue
            wake = min(next_due, next_report)
            if self.tick is not None:
                wake = min(wake, next_tick)
            if phase.seconds is not None:
                wake = min(wake, phase_start + phase.seconds)
            self.sleep(min(max(wake - t, 0.0), self.max_sleep))
        return self.stats

    def _announce(self, index: int, elapsed: float) -> None:
        self.stats.phases.append(self.plan[index].name)
        self.log(at(elapsed, describe_phase(self.plan, index)))

    def _send_one(self, phase: Phase) -> None:
        outcome = choose_outcome(phase, self.rng)
        seed = self.rng.randrange(2**31)
        self.stats.sent += 1
        try:
            status = self.submit(outcome, seed)
        except SubmitError as exc:
            self.stats.submit_errors += 1
            # The first few say what is wrong; after that they would drown the progress lines.
            if self.stats.submit_errors <= 3:
                self.log(f"  prediction not accepted: {exc}")
            return
        self.stats.statuses[status] += 1
