"""The delivery worker: claims due outbox rows, sends each, records every attempt.

Order of one send (healthchecks.io style): the row is committed by the evaluator; `claim`
commits it as `sending` with a lease; the notifier sends outside any transaction; the row and
a DeliveryAttempt are then written in one transaction. A worker that dies mid-send leaves the
row `sending` until the lease ends, when another pass may send it again (at least once).

Rules kept here:
- per (alert_key, notifier), rows go out in id order: a resolution waits while its trigger
  is pending or retrying, so it is never sent first;
- a resolution or acknowledgement whose trigger was never delivered (it failed for good) is
  suppressed: the receiver never heard of the alert, a lone "resolved" would only confuse;
- temporary errors retry with exponential backoff and jitter, at least Retry-After, until
  `settings.delivery_max_age` after the row was written; permanent ones fail at once;
- while a notifier is failing, its other rows wait for the same retry time (one probe, not
  a stampede of timeouts);
- Slack gets at most one message per second per destination.
"""

from __future__ import annotations

import json
import logging
import random
import threading
import time
from dataclasses import dataclass
from typing import cast

from prometheus_client import Counter

from hookwatch.notifiers.base import Notifier, NotifyError, SendContext, SendResult
from hookwatch.notifiers.claims import Claimed, claim, episode, postpone, record, release, suppress
from hookwatch.notifiers.message import AlertMessage
from hookwatch.notifiers.redact import Redactor
from hookwatch.notifiers.registry import NotifierConfig, build
from hookwatch.notifiers.render import duration
from hookwatch.runtime import Runtime

log = logging.getLogger("hookwatch.notifiers")

BATCH = 10
MAX_PASSES = 50
PASS_BUDGET = 60.0  # seconds of real time; later batches wait for the next run (fresh leases)
BACKOFF_BASE = 10.0
BACKOFF_CAP = 600.0
_KEY = "notifiers.worker"
_state_lock = threading.Lock()


@dataclass
class DeliveryReport:
    sent: int = 0
    retried: int = 0
    failed: int = 0
    suppressed: int = 0
    deferred: int = 0  # put back without an attempt (rate limit, notifier failing)


def backoff(attempt: int, rng: random.Random) -> float:
    """10 s, 20 s, 40 s … capped at 10 min, each with "equal jitter" (half fixed, half random).

    https://aws.amazon.com/blogs/architecture/exponential-backoff-and-jitter/
    """
    ceiling = min(BACKOFF_CAP, BACKOFF_BASE * 2 ** max(attempt - 1, 0))
    return ceiling / 2 + rng.uniform(0, ceiling / 2)


class _Worker:
    """Per-runtime state: built notifiers, Slack send times, the nudge thread."""

    def __init__(self, runtime: Runtime) -> None:
        self.lock = threading.Lock()  # one pass at a time in this process
        self.notifiers: dict[str, tuple[NotifierConfig, Notifier]] = {}
        self.last_sent: dict[str, float] = {}
        self.rng = random.Random()
        self.nudger: _Nudger | None = None
        self.prompt = False  # request_delivery works only between start_ and stop_delivery
        self.attempts = Counter(
            "hookwatch_notification_attempts",
            "Notification send attempts, by notifier and outcome (sent, retry, failed).",
            ["notifier", "outcome"],
            registry=runtime.metrics.registry,
        )

    def notifier(self, config: NotifierConfig) -> Notifier:
        cached = self.notifiers.get(config.name)
        if cached is not None and cached[0] == config:
            return cached[1]
        if cached is not None:
            cached[1].close()
        built = build(config)
        self.notifiers[config.name] = (config, built)
        return built


def _worker(runtime: Runtime) -> _Worker:
    with _state_lock:
        worker = runtime.extras.get(_KEY)
        if worker is None:
            worker = _Worker(runtime)
            runtime.extras[_KEY] = worker
        return cast(_Worker, worker)


def deliver(runtime: Runtime, now: float) -> DeliveryReport:
    """Send every due notification once; returns what happened (for tests and logs)."""
    worker = _worker(runtime)
    report = DeliveryReport()
    with worker.lock:
        configs: dict[str, NotifierConfig] = runtime.config.notifiers
        redact = Redactor(s for c in configs.values() for s in c.secrets())
        down: dict[str, float] = {}  # notifier -> when its failing receiver is tried again
        started = time.monotonic()
        for _ in range(MAX_PASSES):
            if time.monotonic() - started > PASS_BUDGET:
                break
            rows = claim(runtime.engine, now=now, limit=BATCH, exclude=set(down))
            if not rows:
                break
            for row in rows:
                _one(runtime, worker, row, now=now, report=report, down=down, redact=redact)
    return report


def deliver_job(runtime: Runtime, now: float) -> None:
    """The scheduler's entry point (hookwatch.jobs)."""
    report = deliver(runtime, now)
    if report.sent or report.failed or report.retried:
        log.info("delivery: %s", report)


def _one(
    runtime: Runtime,
    worker: _Worker,
    row: Claimed,
    *,
    now: float,
    report: DeliveryReport,
    down: dict[str, float],
    redact: Redactor,
) -> None:
    engine = runtime.engine
    config = runtime.config.notifiers.get(row.notifier)
    if config is None:
        record(engine, row, now=now, state="failed", outcome="failed",
                error=f"notifier {row.notifier!r} is not in the config (any more)")
        report.failed += 1
        return
    if row.notifier in down:
        release(engine, row, due_at=max(row.due_at, down[row.notifier]))
        report.deferred += 1
        return
    if row.kind == "resolve" and not config.send_resolved:
        suppress(engine, row, "send_resolved is false for this notifier")
        report.suppressed += 1
        return
    thread_ref = None
    if row.kind not in ("trigger", "test"):
        firing = episode(engine, row)
        delivered = [r for r in firing if r["state"] == "sent"]
        if row.kind in ("resolve", "acknowledge") and firing and not delivered:
            suppress(engine, row, f"its trigger was never delivered ({firing[-1]['state']})")
            report.suppressed += 1
            return
        refs = [r["external_ref"] for r in delivered if r["external_ref"]]
        thread_ref = refs[0] if refs else None
    notifier = worker.notifier(config)
    destination = notifier.destination()
    if notifier.min_interval > 0:
        last = worker.last_sent.get(destination)
        if last is not None and now < last + notifier.min_interval:
            release(engine, row, due_at=last + notifier.min_interval)
            report.deferred += 1
            return
    try:
        message = AlertMessage.from_json(json.loads(row.payload))
    except (ValueError, TypeError, KeyError):
        record(engine, row, now=now, state="failed", outcome="failed",
                error="the outbox payload is not a valid alert message")
        report.failed += 1
        return
    started = time.perf_counter()
    result: SendResult | None = None
    error: NotifyError | None = None
    try:
        result = notifier.send(
            message, SendContext(now=now, notification_id=row.id, thread_ref=thread_ref)
        )
    except NotifyError as exc:
        error = exc
    except Exception as exc:  # a bug or an unforeseen library error: keep the row, retry
        error = NotifyError(f"unexpected {type(exc).__name__}: {exc}", retryable=True)
    elapsed_ms = (time.perf_counter() - started) * 1000
    if notifier.min_interval > 0:
        worker.last_sent[destination] = now
    where = f"notification {row.id} ({row.kind}) to {row.notifier!r} ({config.type})"
    if error is None:
        record(engine, row, now=now, state="sent", outcome="sent", duration_ms=elapsed_ms,
                http_status=result.http_status if result else None,
                external_ref=result.external_ref if result else None)
        worker.attempts.labels(row.notifier, "sent").inc()
        report.sent += 1
        log.info("%s sent in %.0f ms", where, elapsed_ms)
        return
    detail = redact(error.detail)
    attempts = row.attempts + 1

    def fail(why: str) -> None:
        record(engine, row, now=now, state="failed", outcome="failed", error=why,
                http_status=error.http_status, duration_ms=elapsed_ms)
        worker.attempts.labels(row.notifier, "failed").inc()
        report.failed += 1
        log.warning("%s failed for good: %s", where, why)

    if not error.retryable:
        fail(detail)
        return
    delay = backoff(attempts, worker.rng)
    if error.retry_after is not None:
        delay = max(delay, error.retry_after)
    due = now + delay
    if due > row.created_at + runtime.settings.delivery_max_age:
        fail(f"gave up after {attempts} attempt(s) over {duration(now - row.created_at)}: "
             f"{detail}")
        return
    record(engine, row, now=now, state="pending", outcome="retry", error=detail, due_at=due,
            http_status=error.http_status, duration_ms=elapsed_ms)
    worker.attempts.labels(row.notifier, "retry").inc()
    report.retried += 1
    down[row.notifier] = due
    postpone(engine, notifier=row.notifier, until=due)
    log.warning("%s will be retried in %.0f s: %s", where, delay, detail)


class _Nudger:
    """A background thread that runs deliver() soon after request(), coalescing bursts."""

    def __init__(self, runtime: Runtime, debounce: float = 0.05) -> None:
        self.runtime = runtime
        self.debounce = debounce
        self._wake = threading.Event()
        self._stopping = threading.Event()
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None

    def request(self) -> None:
        with self._lock:
            if self._stopping.is_set():
                return
            if self._thread is None:
                self._thread = threading.Thread(
                    target=self._run, name="hookwatch-deliver", daemon=True
                )
                self._thread.start()
        self._wake.set()

    def _run(self) -> None:
        while not self._stopping.is_set():
            self._wake.wait()
            if self._stopping.wait(self.debounce):  # more requests may arrive meanwhile
                return
            self._wake.clear()
            try:
                deliver(self.runtime, self.runtime.clock())
            except Exception as exc:
                log.error("prompt delivery failed: %s", type(exc).__name__)

    @property
    def stopped(self) -> bool:
        return self._stopping.is_set()

    def stop(self, timeout: float = 10.0) -> None:
        self._stopping.set()
        self._wake.set()
        with self._lock:
            thread = self._thread
        if thread is not None:
            thread.join(timeout)


def start_delivery(runtime: Runtime) -> None:
    """Allow prompt deliveries (app start-up, with the scheduler). Until then, and after
    stop_delivery, request_delivery does nothing: tests that run no jobs send nothing."""
    worker = _worker(runtime)
    with _state_lock:
        worker.prompt = True
        if worker.nudger is None or worker.nudger.stopped:
            worker.nudger = _Nudger(runtime)


def request_delivery(runtime: Runtime) -> None:
    """Ask for a delivery pass soon, in a background thread. Thread-safe, cheap, debounced:
    call it after committing outbox rows so a notification leaves within a fraction of a
    second instead of at the next `deliver` tick. A replica that is not the leader leaves
    delivery to the leader."""
    leader = runtime.extras.get("leader")
    if leader is not None and not getattr(leader, "is_leader", True):
        return
    worker = _worker(runtime)
    with _state_lock:
        nudger = worker.nudger if worker.prompt else None
    if nudger is not None:
        nudger.request()


def stop_delivery(runtime: Runtime) -> None:
    """Stop the nudge thread and close the notifiers' HTTP clients (app shutdown)."""
    worker = runtime.extras.get(_KEY)
    if not isinstance(worker, _Worker):
        return
    with _state_lock:
        worker.prompt = False
        nudger = worker.nudger
    if nudger is not None:
        nudger.stop()
    with worker.lock:
        for _config, notifier in worker.notifiers.values():
            notifier.close()
        worker.notifiers.clear()
