"""One debounced nudge: run a job soon after something happened, off the caller's thread.

The shell has two: the evaluator's (a committed failure, here or on another replica, or a new
silence) and delivery's (outbox rows committed). A burst of pokes within `debounce` seconds
costs one run; a poke while the job runs schedules the next, so none is missed; consecutive
runs start at least `min_interval` apart, and at least `cost_factor` times the last run's
duration apart, so a job that grows slow (an evaluation over thousands of scopes while failures
stream in) takes at most 1 / (1 + cost_factor) of the process's time and leaves the rest to
the webhooks (monotonic time: this only schedules, it decides nothing). A nudge does nothing
until `start()` and after `stop()`: it is started with the jobs, on the leader only
(hookwatch.jobs).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable

from hookwatch.storage.health import unavailable_reason

log = logging.getLogger("hookwatch.jobs")


class Nudge:
    def __init__(
        self, name: str, job: Callable[[], object], *, debounce: float,
        min_interval: float = 0.0, cost_factor: float = 0.0,
    ) -> None:
        self.name = name
        self.job = job
        self.debounce = debounce
        self.min_interval = min_interval
        self.cost_factor = cost_factor
        self._last_start = float("-inf")
        self._last_cost = 0.0
        self._mutex = threading.Lock()
        self._timer: threading.Timer | None = None
        self._running = False  # between start() and stop()
        self._active = 0  # runs in progress (a poke during a run may start the next early;
        # the jobs serialise themselves: Evaluator.lock, DeliveryWorker.lock)
        self._idle = threading.Event()
        self._idle.set()

    @property
    def running(self) -> bool:
        return self._running

    def start(self) -> None:
        with self._mutex:
            self._running = True

    def poke(self) -> None:
        """Run the job soon; cheap and thread-safe (the event loop calls it)."""
        with self._mutex:
            if self._timer is not None or not self._running:
                return
            self._idle.clear()
            spacing = max(self.min_interval, self.cost_factor * self._last_cost)
            wait = max(self.debounce, self._last_start + spacing - time.monotonic())
            self._timer = threading.Timer(wait, self._fire)
            self._timer.name = f"hookwatch-{self.name}-nudge"
            self._timer.daemon = True
            self._timer.start()

    def _fire(self) -> None:
        with self._mutex:
            self._timer = None
            if not self._running:
                if self._active == 0:
                    self._idle.set()
                return
            self._last_start = started = time.monotonic()
            self._active += 1
        try:
            self.job()
        except Exception as exc:
            reason = unavailable_reason(exc)
            if reason is None:
                log.exception("nudged %s failed", self.name)
            else:  # locked or unreachable: one line; the scheduled run tries again
                log.error("nudged %s: the database refused (%s)", self.name, reason)
        finally:
            with self._mutex:
                self._last_cost = time.monotonic() - started
                self._active -= 1
                if self._timer is None and self._active == 0:
                    self._idle.set()

    def wait_idle(self, timeout: float) -> bool:
        """Until no run is pending or running (shutdown, tests); False on timeout."""
        return self._idle.wait(timeout)

    def stop(self, timeout: float = 30.0) -> None:
        """No more runs; a run in flight finishes (before the engine closes)."""
        with self._mutex:
            self._running = False
            if self._timer is not None:
                self._timer.cancel()
                self._timer = None
                if self._active == 0:
                    self._idle.set()
        self.wait_idle(timeout)
