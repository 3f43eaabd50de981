"""The periodic jobs (evaluate, deliver, reconcile, prune) on one APScheduler.

Each job is `fn(runtime, now)`; the clock is read here, at the edge, and passed in.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass

from apscheduler.schedulers.background import BackgroundScheduler

from hookwatch.runtime import Runtime

log = logging.getLogger("hookwatch.jobs")

JobFn = Callable[[Runtime, float], None]


@dataclass(frozen=True)
class JobSpec:
    name: str
    fn: JobFn
    interval: Callable[[Runtime], float]  # seconds, read from settings


def job_specs() -> list[JobSpec]:
    """The explicit list of periodic jobs; each package owns its function."""
    return []


class Jobs:
    def __init__(self, runtime: Runtime) -> None:
        self.runtime = runtime
        self.scheduler: BackgroundScheduler | None = None
        self.specs = job_specs()

    def run(self, spec: JobSpec) -> None:
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

    def stop(self) -> None:
        if self.scheduler is not None:
            self.scheduler.shutdown(wait=True)
            self.scheduler = None
