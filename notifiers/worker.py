"""The delivery worker: claims due outbox rows, decides each (notifiers.decision), carries the
decision out, records every attempt.

Order of one send (healthchecks.io style): the row is committed by the evaluator; `claim`
commits it as `sending` with a lease; the notifier sends outside any transaction; the row and
a DeliveryAttempt are then written in one transaction. A worker that dies mid-send leaves the
row `sending` until the lease ends, when another pass may send it again (at least once).
Per (alert_key, notifier), rows go out in id order: `claim` takes a row only once the earlier
ones are settled, so a resolution is never sent before its trigger.

`Channels` holds one `ChannelSender` per notifier (its built client and pace); `DeliveryWorker`
runs passes over the outbox and hands each row to its channel's sender; `deliver(now, only=...)`
runs the rows of some channels only (one worker per channel, side by side, is a pass each).
"""

from __future__ import annotations

import logging
import random
import threading
import time
from collections.abc import Collection, Mapping
from dataclasses import dataclass

from prometheus_client import CollectorRegistry, Counter
from sqlalchemy import Engine

from hookwatch.notifiers.base import Notifier, NotifyError, SendContext, SendResult
from hookwatch.notifiers.claims import Claimed, claim, episode, postpone, record, release, suppress
from hookwatch.notifiers.decision import (
    Channel,
    Defer,
    Earlier,
    Fail,
    GiveUp,
    Send,
    Suppress,
    after_failure,
    decide,
)
from hookwatch.notifiers.redact import Redactor
from hookwatch.notifiers.registry import NotifierConfig, build

log = logging.getLogger("hookwatch.notifiers")

BATCH = 10
MAX_PASSES = 50
PASS_BUDGET = 60.0  # seconds of real time; later batches wait for the next run (fresh leases)


@dataclass
class DeliveryReport:
    sent: int = 0
    retried: int = 0
    failed: int = 0
    suppressed: int = 0
    deferred: int = 0  # put back without an attempt (rate limit, notifier failing)


class ChannelSender:
    """One notifier: its built client, and the executor of one row's decision."""

    def __init__(self, config: NotifierConfig, engine: Engine, *, max_age: float,
                 attempts: Counter, pace: dict[str, float], rng: random.Random) -> None:
        self.config = config
        self.engine = engine
        self.max_age = max_age
        self.notifier: Notifier = build(config)
        self.destination = self.notifier.destination()
        self._attempts = attempts
        self._pace = pace  # destination -> last send, shared by channels of one destination
        self._rng = rng
        self.down_until: float | None = None  # set by a temporary failure, for this pass

    def state(self) -> Channel:
        return Channel(configured=True, send_resolved=self.config.send_resolved,
                       down_until=self.down_until, min_interval=self.notifier.min_interval,
                       last_sent=self._pace.get(self.destination))

    def handle(self, row: Claimed, *, now: float, report: DeliveryReport,
               redact: Redactor) -> None:
        earlier = [] if row.kind in ("trigger", "test") else [
            Earlier(r["state"], r["external_ref"]) for r in episode(self.engine, row)]
        decision = decide(row, self.state(), earlier, now=now)
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
            record(self.engine, row, now=now, state="sent", outcome="sent",
                   duration_ms=elapsed_ms, http_status=result.http_status if result else None,
                   external_ref=result.external_ref if result else None)
            self._attempts.labels(row.notifier, "sent").inc()
            report.sent += 1
            log.info("%s sent in %.0f ms", where, elapsed_ms)
            return
        detail = redact(error.detail)
        after = after_failure(row, detail=detail, retryable=error.retryable,
                              retry_after=error.retry_after, now=now, max_age=self.max_age,
                              jitter=self._rng.random())
        if isinstance(after, GiveUp):
            record(self.engine, row, now=now, state="failed", outcome="failed",
                   error=after.reason, http_status=error.http_status, duration_ms=elapsed_ms)
            self._attempts.labels(row.notifier, "failed").inc()
            report.failed += 1
            log.warning("%s failed for good: %s", where, after.reason)
            return
        record(self.engine, row, now=now, state="pending", outcome="retry", error=detail,
               due_at=after.at, http_status=error.http_status, duration_ms=elapsed_ms)
        self._attempts.labels(row.notifier, "retry").inc()
        report.retried += 1
        # One probe, not a stampede of timeouts: the notifier's other rows wait as long.
        self.down_until = after.at
        postpone(self.engine, notifier=row.notifier, until=after.at)
        log.warning("%s will be retried in %.0f s: %s", where, after.delay, detail)

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
    """Built by create_app: sends due notifications through the configured notifiers."""

    def __init__(self, engine: Engine, notifiers: Mapping[str, NotifierConfig], *,
                 max_age: float, registry: CollectorRegistry | None = None,
                 rng: random.Random | None = None) -> None:
        self.engine = engine
        self.configs = dict(notifiers)
        self.max_age = max_age
        self.lock = threading.Lock()  # one pass at a time in this process
        self.rng = rng or random.Random()
        self.pace: dict[str, float] = {}
        self.senders: dict[str, ChannelSender] = {}
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
        sender = self.senders.get(name)
        if sender is None:
            sender = ChannelSender(config, self.engine, max_age=self.max_age,
                                   attempts=self.attempts, pace=self.pace, rng=self.rng)
            self.senders[name] = sender
        return sender

    def deliver(self, now: float, *, only: Collection[str] | None = None) -> DeliveryReport:
        """Send every due notification once (of the notifiers in `only`, when given); returns
        what happened (for tests and logs)."""
        report = DeliveryReport()
        with self.lock:
            down: set[str] = set()  # notifiers failing in this pass: their rows wait
            started = time.monotonic()
            for known in self.senders.values():
                known.down_until = None
            for _ in range(MAX_PASSES):
                if time.monotonic() - started > PASS_BUDGET:
                    break
                rows = claim(self.engine, now=now, limit=BATCH, exclude=down, only=only)
                if not rows:
                    break
                for row in rows:
                    sender = self.sender(row.notifier)
                    if sender is None:  # the notifier left the config
                        decision = decide(row, Channel(configured=False), [], now=now)
                        assert not isinstance(decision, Send)
                        carry_out(self.engine, row, decision, now=now, report=report)
                        continue
                    sender.handle(row, now=now, report=report, redact=self.redact)
                    if sender.down_until is not None:
                        down.add(row.notifier)
        return report

    def run(self, now: float) -> None:
        """The scheduler's job (hookwatch.jobs): deliver, and log what happened."""
        report = self.deliver(now)
        if report.sent or report.failed or report.retried:
            log.info("delivery: %s", report)

    def close(self) -> None:
        """Close the notifiers' HTTP clients (app shutdown)."""
        with self.lock:
            for sender in self.senders.values():
                sender.close()
            self.senders.clear()
