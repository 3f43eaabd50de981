"""The periodic jobs (evaluate, deliver, reconcile, prune) on one APScheduler.

Each job is `fn(runtime, now)`; the clock is read here, at the edge, and passed in.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime

from apscheduler.schedulers.background import BackgroundScheduler

from hookwatch.alerts.job import evaluate as evaluate_alerts
from hookwatch.alerts.job import install_nudge
from hookwatch.alerts.job import nudge as nudge_evaluation
from hookwatch.hooks.reconcile import reconcile
from hookwatch.leader import Leadership, SoleLeader
from hookwatch.notifiers.worker import deliver_job
from hookwatch.runtime import Runtime
from hookwatch.storage.batch import FAILED_CHANNEL
from hookwatch.storage.prune import PRUNE_INTERVAL, prune

log = logging.getLogger("hookwatch.jobs")

JobFn = Callable[[Runtime, float], object]  # a job may return a report; it is ignored


@dataclass(frozen=True)
class JobSpec:
    name: str
    fn: JobFn
    interval: Callable[[Runtime], float]  # seconds, read from settings
    # Runs on the leader replica only (hookwatch/leader.py). Every job so far works on the
    # shared database, so once per cluster is enough: evaluate, deliver, reconcile, prune.
    leader_only: bool = True
    # Wires the job to events (e.g. alerts' nudge after a counted failure) while the jobs run;
    # returns the function that unwires it.
    attach: Callable[[Runtime], Callable[[], None]] | None = None


def job_specs() -> list[JobSpec]:
    """The explicit list of periodic jobs; each package owns its function."""
    return [
        JobSpec("reconcile", reconcile, lambda r: r.settings.reconcile_interval),
        JobSpec("prune", prune, lambda _r: PRUNE_INTERVAL),
        JobSpec("deliver", deliver_job, lambda r: r.settings.deliver_interval),
        JobSpec("evaluate", evaluate_alerts, lambda r: r.settings.evaluate_interval,
                attach=install_nudge),
    ]


class Jobs:
    def __init__(self, runtime: Runtime, leader: Leadership | None = None) -> None:
        self.runtime = runtime
        self.leader = leader if leader is not None else SoleLeader()
        self.scheduler: BackgroundScheduler | None = None
        self.specs = job_specs()
        self._detach: dict[str, Callable[[], None]] = {}  # job name -> unwire its events
        self._wiring = threading.Lock()

    def run(self, spec: JobSpec) -> None:
        if spec.leader_only and not self.leader.is_leader:
            return
        try:
            spec.fn(self.runtime, self.runtime.clock())
        except Exception:
            log.exception("job %s failed", spec.name)

    def run_now(self, name: str) -> None:
        """Run one job at once, out of schedule (tests, nudges)."""
        for spec in self.specs:
            if spec.name == name:
                self.run(spec)
                return
        raise KeyError(name)

    def start(self) -> None:
        scheduler = BackgroundScheduler(job_defaults={"coalesce": True, "max_instances": 1})
        for spec in self.specs:
            scheduler.add_job(
                self.run, "interval", args=[spec], seconds=spec.interval(self.runtime),
                id=spec.name, name=spec.name,
            )
        scheduler.start()
        self.scheduler = scheduler
        self._wire(self.leader.is_leader)
        # A failure counted by any replica's writer (its NOTIFY, storage/batch.py) nudges the
        # evaluation on the leader, as this replica's own writer does through the nudge.
        self.leader.listen(FAILED_CHANNEL, lambda: nudge_evaluation(self.runtime))

    def _wire(self, leading: bool) -> None:
        """Event hooks (the evaluator's nudge) of leader-only jobs live only on the leader."""
        with self._wiring:
            if self.scheduler is None:
                return
            for spec in self.specs:
                if spec.attach is None:
                    continue
                wanted = leading or not spec.leader_only
                if wanted and spec.name not in self._detach:
                    self._detach[spec.name] = spec.attach(self.runtime)
                elif not wanted and spec.name in self._detach:
                    self._detach.pop(spec.name)()

    def on_leadership(self, leading: bool) -> None:
        """A new leader wires its jobs' hooks and runs its jobs at once (pending deliveries do
        not wait for the tick); a replica that lost leadership unwires them."""
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
            for detach in self._detach.values():
                detach()
            self._detach = {}
            if self.scheduler is not None:
                self.scheduler.shutdown(wait=True)
                self.scheduler = None
