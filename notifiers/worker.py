"""The delivery worker: claims due outbox rows, decides each (notifiers.decision), carries the
decision out, records every attempt; one channel never waits for another.

Order of one send (healthchecks.io style): the row is committed by the evaluator; `claim`
commits it as `sending` with a lease; the notifier sends outside any transaction; the row and
a DeliveryAttempt are then written in one transaction. A worker that dies mid-send leaves the
row `sending` until the lease ends, when another pass may send it again (at least once).
Per (alert_key, notifier), rows go out in id order: `claim` takes a row only once the earlier
ones are settled, so a resolution is never sent before its trigger.

Channels are isolated (Alertmanager runs one goroutine per receiver for the same reason): each
notifier has a `ChannelSender` with its client, its pace, its own time budget and its own
thread, so a receiver that hangs, trickles, fails or rate-limits holds up only its own rows.
Every exchange has a deadline for the whole of it (notifiers.http, notifiers.mail).
`deliver(now, only=...)` runs one pass of each channel side by side and waits for them (tests,
one-shot use); `run(now)`, the scheduler's job, starts the passes and returns at once.
"""

from __future__ import annotations

import logging
import random
import threading
import time
from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass, fields

from prometheus_client import CollectorRegistry, Counter
from sqlalchemy import Engine

from hookwatch.notifiers.base import Notifier, NotifyError, SendContext, SendResult
from hookwatch.notifiers.claims import (
    Claimed,
    claim,
    episode,
    postpone,
    record,
    release,
    reroute,
    suppress,
)
from hookwatch.notifiers.decision import (
    Channel,
    Defer,
    Earlier,
    Fail,
    GiveUp,
    Reroute,
    Send,
    Suppress,
    after_failure,
    decide,
)
from hookwatch.notifiers.health import Health, Outcome, after, load
from hookwatch.notifiers.redact import Redactor
from hookwatch.notifiers.registry import NotifierConfig, build

log = logging.getLogger("hookwatch.notifiers")

BATCH = 10
MAX_PASSES = 50
PASS_BUDGET = 60.0  # seconds of real time per channel; later rows wait for its next pass
STOP_WAIT = 2.0  # seconds close() waits for a channel's thread once its sends are aborted


@dataclass
class DeliveryReport:
    sent: int = 0
    retried: int = 0
    failed: int = 0
    suppressed: int = 0
    deferred: int = 0  # put back without an attempt (rate limit, notifier failing)
    rerouted: int = 0  # handed to the notifier's fallback

    def add(self, other: DeliveryReport) -> None:
        for f in fields(self):
            setattr(self, f.name, getattr(self, f.name) + getattr(other, f.name))


class ChannelSender:
    """One notifier: its built client, its passes (one at a time), the executor of a row's
    decision."""

    def __init__(self, config: NotifierConfig, engine: Engine, *, max_age: float,
                 attempts: Counter, pace: dict[str, float], rng: random.Random,
                 redact: Redactor, wake: Callable[[str, float], None]) -> None:
        self.config = config
        self.engine = engine
        self.max_age = max_age
        self.notifier: Notifier = build(config)
        self.destination = self.notifier.destination()
        self._attempts = attempts
        self._pace = pace  # destination -> last send, shared by channels of one destination
        self._rng = rng
        self._redact = redact
        self._wake = wake  # another channel has rows now (a fallback was handed some)
        self.down_until: float | None = None  # set by a temporary failure, for this pass
        self.health = Health(config.name)
        self.lock = threading.Lock()  # one pass at a time on this channel
        self.stopping = False
        # The background loop (`kick`): the latest `now` asked for, and the thread running.
        self._wanted: float | None = None
        self._thread: threading.Thread | None = None
        self._state = threading.Lock()
        self._wake_others = True

    @property
    def name(self) -> str:
        return self.config.name

    def state(self, now: float) -> Channel:
        fallback = self.config.fallback if self.health.failing(now) else None
        return Channel(configured=True, send_resolved=self.config.send_resolved,
                       down_until=self.down_until, min_interval=self.notifier.min_interval,
                       last_sent=self._pace.get(self.destination), fallback=fallback,
                       probe_due=self.health.probe_due(now))

    # --- passes ---------------------------------------------------------------------------

    def run_pass(self, now: float, *, wake: bool = True) -> DeliveryReport:
        """Send this channel's due rows, within its own time budget; rows handed to a fallback
        start its channel (unless `wake` is false: the caller runs it)."""
        report = DeliveryReport()
        with self.lock:
            self._wake_others = wake
            self.down_until = None
            self.health = load(self.engine, [self.name]).get(self.name, Health(self.name))
            started = time.monotonic()
            for _ in range(MAX_PASSES):
                if self.stopping or self.down_until is not None:
                    break
                if time.monotonic() - started > PASS_BUDGET:
                    break
                rows = claim(self.engine, now=now, limit=BATCH, exclude=set(), only=[self.name])
                if not rows:
                    break
                for row in rows:
                    if self.stopping:  # shutting down: the rest go back untried
                        release(self.engine, row, due_at=row.due_at)
                        continue
                    self.handle(row, now=now, report=report)
        return report

    def kick(self, now: float) -> None:
        """Run a pass in this channel's thread, now or (if one runs) right after it."""
        with self._state:
            if self.stopping:
                return
            self._wanted = now if self._wanted is None else max(self._wanted, now)
            if self._thread is not None:
                return
            self._thread = threading.Thread(target=self._loop, name=f"deliver-{self.name}",
                                            daemon=True)
            self._thread.start()

    def _loop(self) -> None:
        while True:
            with self._state:
                now, self._wanted = self._wanted, None
                if now is None or self.stopping:
                    self._thread = None
                    return
            try:
                report = self.run_pass(now)
                if report.sent or report.failed or report.retried or report.rerouted:
                    log.info("delivery to %r: %s", self.name, report)
            except Exception:
                log.exception("delivery to %r failed", self.name)

    # --- one row --------------------------------------------------------------------------

    def handle(self, row: Claimed, *, now: float, report: DeliveryReport) -> None:
        earlier = [] if row.kind in ("trigger", "test") else [
            Earlier(r["state"], r["external_ref"]) for r in episode(self.engine, row)]
        decision = decide(row, self.state(now), earlier, now=now)
        if isinstance(decision, Reroute):
            reroute(self.engine, row, to=decision.to, reason=decision.reason, now=now)
            report.rerouted += 1
            if self._wake_others:
                self._wake(decision.to, now)
            return
        if not isinstance(decision, Send):
            carry_out(self.engine, row, decision, now=now, report=report)
            return
        started = time.perf_counter()
        result: SendResult | None = None
        error: NotifyError | None = None
        try:
            result = self.notifier.send(decision.message, SendContext(
                now=now, notification_id=row.id, thread_ref=decision.thread_ref))
        except NotifyError as exc:
            error = exc
        except Exception as exc:  # a bug or an unforeseen library error: keep the row, retry
            error = NotifyError(f"unexpected {type(exc).__name__}: {exc}", retryable=True)
        elapsed_ms = (time.perf_counter() - started) * 1000
        if self.notifier.min_interval > 0:
            self._pace[self.destination] = now
        where = f"notification {row.id} ({row.kind}) to {row.notifier!r} ({self.config.type})"
        if error is None:
            outcome = Outcome(self.name, ok=True)
            self.health = after(self.health, outcome, now=now)
            record(self.engine, row, now=now, state="sent", outcome="sent",
                   duration_ms=elapsed_ms, http_status=result.http_status if result else None,
                   external_ref=result.external_ref if result else None, health=outcome)
            self._attempts.labels(row.notifier, "sent").inc()
            report.sent += 1
            log.info("%s sent in %.0f ms", where, elapsed_ms)
            return
        detail = self._redact(error.detail)
        outcome = Outcome(self.name, ok=False, permanent=not error.retryable, error=detail)
        self.health = after(self.health, outcome, now=now)
        fallback = self.config.fallback if self.health.failing(now) else None
        decided = after_failure(row, detail=detail, retryable=error.retryable,
                                retry_after=error.retry_after, now=now, max_age=self.max_age,
                                jitter=self._rng.random(), fallback=fallback)
        if isinstance(decided, Reroute):
            record(self.engine, row, now=now, state="failed", outcome="failed",
                   error=f"{detail}; {decided.reason}", http_status=error.http_status,
                   duration_ms=elapsed_ms, health=outcome, copy_to=decided.to)
            self._attempts.labels(row.notifier, "failed").inc()
            report.rerouted += 1
            log.warning("%s failed: %s; %s", where, detail, decided.reason)
            if self._wake_others:
                self._wake(decided.to, now)
            return
        if isinstance(decided, GiveUp):
            record(self.engine, row, now=now, state="failed", outcome="failed",
                   error=decided.reason, http_status=error.http_status, duration_ms=elapsed_ms,
                   health=outcome)
            self._attempts.labels(row.notifier, "failed").inc()
            report.failed += 1
            log.warning("%s failed for good: %s", where, decided.reason)
            return
        record(self.engine, row, now=now, state="pending", outcome="retry", error=detail,
               due_at=decided.at, http_status=error.http_status, duration_ms=elapsed_ms,
               health=outcome)
        self._attempts.labels(row.notifier, "retry").inc()
        report.retried += 1
        # One probe, not a stampede of timeouts: the notifier's other rows wait as long.
        self.down_until = decided.at
        postpone(self.engine, notifier=row.notifier, until=decided.at)
        log.warning("%s will be retried in %.0f s: %s", where, decided.delay, detail)

    # --- shutdown -------------------------------------------------------------------------

    @property
    def thread(self) -> threading.Thread | None:
        with self._state:
            return self._thread

    def stop(self) -> threading.Thread | None:
        """No new passes; the send in flight is aborted (its row is retried later)."""
        with self._state:
            self.stopping = True
            thread = self._thread
        abort = getattr(self.notifier, "abort", None)  # a channel may have nothing to abort
        if abort is not None:
            abort()
        return thread

    def close(self) -> None:
        self.notifier.close()


def carry_out(engine: Engine, row: Claimed, decision: Defer | Suppress | Fail, *, now: float,
              report: DeliveryReport) -> None:
    """A decision without a send: put back, suppress, or fail without an attempt."""
    if isinstance(decision, Defer):
        release(engine, row, due_at=decision.until)
        report.deferred += 1
    elif isinstance(decision, Suppress):
        suppress(engine, row, decision.reason)
        report.suppressed += 1
    else:
        record(engine, row, now=now, state="failed", outcome="failed", error=decision.reason)
        report.failed += 1


class DeliveryWorker:
    """Built by create_app: sends due notifications through the configured notifiers, each
    channel on its own."""

    def __init__(self, engine: Engine, notifiers: Mapping[str, NotifierConfig], *,
                 max_age: float, registry: CollectorRegistry | None = None,
                 rng: random.Random | None = None) -> None:
        self.engine = engine
        self.configs = dict(notifiers)
        self.max_age = max_age
        self.rng = rng or random.Random()
        self.pace: dict[str, float] = {}
        self.senders: dict[str, ChannelSender] = {}
        self._senders_lock = threading.Lock()
        self.closed = False
        self.attempts = Counter(
            "hookwatch_notification_attempts",
            "Notification send attempts, by notifier and outcome (sent, retry, failed).",
            ["notifier", "outcome"],
            registry=registry if registry is not None else CollectorRegistry(),
        )
        self.redact = Redactor(s for c in self.configs.values() for s in c.secrets())

    def sender(self, name: str) -> ChannelSender | None:
        config = self.configs.get(name)
        if config is None:
            return None
        with self._senders_lock:
            sender = self.senders.get(name)
            if sender is None:
                sender = ChannelSender(config, self.engine, max_age=self.max_age,
                                       attempts=self.attempts, pace=self.pace, rng=self.rng,
                                       redact=self.redact, wake=self._wake)
                self.senders[name] = sender
        return sender

    def _wake(self, name: str, now: float) -> None:
        sender = self.sender(name)
        if sender is not None and not self.closed:
            sender.kick(now)

    def _unconfigured(self, now: float, report: DeliveryReport) -> None:
        """Rows of notifiers that left the config fail at once."""
        while True:
            rows = claim(self.engine, now=now, limit=BATCH, exclude=set(self.configs))
            if not rows:
                return
            for row in rows:
                decision = decide(row, Channel(configured=False), [], now=now)
                assert isinstance(decision, Fail)
                carry_out(self.engine, row, decision, now=now, report=report)

    def deliver(self, now: float, *, only: Collection[str] | None = None) -> DeliveryReport:
        """Send every due notification once (of the notifiers in `only`, when given), one
        thread per channel, and wait for all; returns what happened (for tests and logs).
        Rows handed to a fallback are sent in the same call."""
        report = DeliveryReport()
        if only is None:
            self._unconfigured(now, report)
        names = [n for n in self.configs if only is None or n in only]
        for _ in range(len(self.configs) + 1):  # fallbacks form no cycle: a chain at most
            results: dict[str, DeliveryReport] = {}
            threads = []
            for name in names:
                sender = self.sender(name)
                assert sender is not None

                def one(s: ChannelSender = sender,
                        into: dict[str, DeliveryReport] = results) -> None:
                    into[s.name] = s.run_pass(now, wake=False)

                thread = threading.Thread(target=one, name=f"deliver-{name}", daemon=True)
                thread.start()
                threads.append(thread)
            for thread in threads:
                thread.join()
            for result in results.values():
                report.add(result)
            names = sorted({self.configs[n].fallback or "" for n, r in results.items()
                            if r.rerouted} - {""})
            if not names:
                break
        return report

    def run(self, now: float) -> None:
        """The scheduler's job (hookwatch.jobs): start each channel's pass and return; a
        channel still busy with its last pass runs again once it ends."""
        if self.closed:
            return
        report = DeliveryReport()
        self._unconfigured(now, report)
        if report.failed:
            log.info("delivery: %s", report)
        for name in self.configs:
            self._wake(name, now)

    def wait_idle(self, timeout: float = 30.0) -> bool:
        """Wait until no channel has a pass running or asked for (tests, `Jobs.run_now`)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with self._senders_lock:
                running = [s.thread for s in self.senders.values()]  # each read once: a
            threads = [t for t in running if t is not None]  # thread clears it as it ends
            if not threads:
                return True
            for thread in threads:
                thread.join(max(0.0, deadline - time.monotonic()))
        return False

    def close(self) -> None:
        """Stop the channels (their sends in flight are aborted) and close their clients."""
        self.closed = True
        with self._senders_lock:
            senders = list(self.senders.values())
        threads = [t for t in (s.stop() for s in senders) if t is not None]
        deadline = time.monotonic() + STOP_WAIT
        for thread in threads:
            thread.join(max(0.0, deadline - time.monotonic()))
        for sender in senders:
            sender.close()
        with self._senders_lock:
            self.senders.clear()
