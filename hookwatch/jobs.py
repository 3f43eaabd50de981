"""The periodic jobs (evaluate, deliver, reconcile, prune) on one APScheduler.

Each job is `fn(now)`, a bound method of the typed object create_app built for it; the clock is
read here, at the edge, and passed in.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime

from apscheduler.schedulers.background import BackgroundScheduler

from hookwatch.leader import Leadership, SoleLeader
from hookwatch.nudge import Nudge
from hookwatch.storage.health import unavailable_reason

log = logging.getLogger("hookwatch.jobs")


@dataclass(frozen=True)
class JobSpec:
    name: str
    fn: Callable[[float], object]  # a job may return a report; it is ignored
    interval: float  # seconds, from the settings
    # Runs on the leader replica only (hookwatch/leader.py). Every job so far works on the
    # shared database, so once per cluster is enough: evaluate, deliver, reconcile, prune.
    leader_only: bool = True
    # Runs the job soon after an event (a counted failure, new outbox rows); started while the
    # job is scheduled here (on the leader, for a leader-only job), stopped otherwise.
    nudge: Nudge | None = None
    # A job that hands its work to threads of its own (deliver: one per channel) and returns:
    # `run_now` waits for that work to end, the schedule never does.
    settle: Callable[[], object] | None = None


def _not_an_overrun(record: logging.LogRecord) -> bool:
    # APScheduler warns at every tick a job is still running for; with coalescing that is the
    # plan (a job stuck on a locked database logs its own one line when it gives up).
    return "maximum number of running instances reached" not in str(record.msg)


def quiet_overruns() -> None:
    scheduler_log = logging.getLogger("apscheduler.scheduler")
    if _not_an_overrun not in scheduler_log.filters:
        scheduler_log.addFilter(_not_an_overrun)


class Jobs:
    def __init__(self, specs: list[JobSpec], clock: Callable[[], float],
                 leader: Leadership | None = None) -> None:
        self.specs = specs
        self.clock = clock
        self.leader = leader if leader is not None else SoleLeader()
        self.scheduler: BackgroundScheduler | None = None
        self._wiring = threading.Lock()

    def run(self, spec: JobSpec) -> None:
        if spec.leader_only and not self.leader.is_leader:
            return
        try:
            spec.fn(self.clock())
        except Exception as exc:
            reason = unavailable_reason(exc)
            if reason is None:
                log.exception("job %s failed", spec.name)
            else:  # locked or unreachable: one line, the next tick tries again
                log.error("job %s: the database refused (%s); it runs again on its next tick",
                          spec.name, reason)

    def run_now(self, name: str) -> None:
        """Run one job at once, out of schedule (tests, nudges)."""
        for spec in self.specs:
            if spec.name == name:
                self.run(spec)
                if spec.settle is not None:
                    spec.settle()
                return
        raise KeyError(name)

    def start(self) -> None:
        quiet_overruns()
        scheduler = BackgroundScheduler(job_defaults={"coalesce": True, "max_instances": 1})
        for spec in self.specs:
            scheduler.add_job(
                self.run, "interval", args=[spec], seconds=spec.interval,
                id=spec.name, name=spec.name,
            )
        scheduler.start()
        self.scheduler = scheduler
        self._wire(self.leader.is_leader)

    def _wire(self, leading: bool) -> None:
        """The nudges of leader-only jobs run only on the leader."""
        with self._wiring:
            if self.scheduler is None:
                return
            for spec in self.specs:
                if spec.nudge is None:
                    continue
                wanted = leading or not spec.leader_only
                if wanted and not spec.nudge.running:
                    spec.nudge.start()
                elif not wanted and spec.nudge.running:
                    spec.nudge.stop()

    def on_leadership(self, leading: bool) -> None:
        """A new leader starts its jobs' nudges and runs its jobs at once (pending deliveries
        do not wait for the tick); a replica that lost leadership stops them."""
        self._wire(leading)
        scheduler = self.scheduler
        if not leading or scheduler is None:
            return
        for spec in self.specs:
            if spec.leader_only:
                job = scheduler.get_job(spec.name)
                if job is not None:
                    job.modify(next_run_time=datetime.now(UTC))

    def stop(self) -> None:
        with self._wiring:
            for spec in self.specs:
                if spec.nudge is not None:
                    spec.nudge.stop()
            if self.scheduler is not None:
                self.scheduler.shutdown(wait=True)
                self.scheduler = None
