"""What one running service holds: its settings and config, the engine and writer, and the
typed object of each package that create_app built (hookwatch.app)."""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field

from sqlalchemy import Engine

from hookwatch.access import AccessPlan
from hookwatch.alerts.actions import AlertContext
from hookwatch.alerts.job import Evaluator
from hookwatch.config import Config
from hookwatch.dashboard.context import Dashboard
from hookwatch.hooks.reconcile import Reconciler
from hookwatch.hooks.route import Receiver
from hookwatch.leader import Leadership
from hookwatch.metrics import Metrics
from hookwatch.notifiers.worker import DeliveryWorker
from hookwatch.nudge import Nudge
from hookwatch.settings import Settings
from hookwatch.storage.rollups import Counted
from hookwatch.storage.writer import Writer

log = logging.getLogger("hookwatch")

EVALUATE_DEBOUNCE = 0.1  # seconds: a burst of failures costs one evaluation, and the alert < 1 s
# Under a steady stream of failures, nudged evaluations start at most this often, so they
# cost a bounded share of the CPU that ingest needs; the alert still lands within a second.
EVALUATE_MIN_INTERVAL = 0.5
# And at least 9 times as far apart as the last one took: an evaluation over 1,000 scopes with
# every rule kind costs tens of ms of the web process's GIL, so it stays under a tenth of it.
# Under a stream of failures over 1,000 models, 4 left 348-361 us of web CPU per webhook, 9
# 230-287 (bench_ingest.py --shapes completed-1000, alternating rounds); below ~5 ms an
# evaluation (100 models) is spaced by EVALUATE_MIN_INTERVAL alone, so pages are as prompt.
EVALUATE_COST_FACTOR = 9.0
DELIVER_DEBOUNCE = 0.05


@dataclass(frozen=True)
class Nudges:
    evaluate: Nudge  # after a counted failure (here or on another replica), a new silence
    deliver: Nudge  # after outbox rows were committed (an evaluation, an acknowledgement)


@dataclass
class Runtime:
    settings: Settings
    config: Config
    engine: Engine
    writer: Writer
    metrics: Metrics
    clock: Callable[[], float]
    leader: Leadership
    receiver: Receiver
    evaluator: Evaluator
    delivery: DeliveryWorker
    reconciler: Reconciler
    alerts: AlertContext
    dashboard: Dashboard
    nudges: Nudges
    access: AccessPlan  # the dashboard's mode and token, for serve's banner
    counted_listeners: list[Callable[[list[Counted]], None]] = field(default_factory=list)

    def counted(self, outcomes: list[Counted]) -> None:
        """Called by the writer (and the reconciler) after each commit that counted terminal
        outcomes."""
        for listener in self.counted_listeners:
            try:
                listener(outcomes)
            except Exception:
                log.exception("a counted-outcome listener failed")

    def evaluate(self, now: float) -> None:
        """The evaluate job: the evaluator decides; the shell wakes delivery when it wrote
        notifications (send now rather than at the deliver job's next tick)."""
        if self.evaluator.evaluate(now).notifications:
            self.nudges.deliver.poke()
