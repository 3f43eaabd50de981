"""The delivery decision, pure: one claimed outbox row, what came before it on its channel, the
channel's state and the time in; send / defer / suppress / fail out, and after a failed send,
retry at T or give up. No database, no clock, no network: notifiers.worker carries it out.

The policy (healthchecks.io-like, see notifiers.worker's docstring for the order of a send):
- a notifier that left the config fails its rows at once;
- while a notifier is failing (`down_until`), its other rows wait for the same retry time;
- a resolution is suppressed when the notifier has `send_resolved = false`;
- a resolution or acknowledgement whose trigger was never delivered is suppressed: the receiver
  never heard of the alert, a lone "resolved" would only confuse;
- a paced notifier (Slack: one message a second per destination) defers until its slot;
- temporary errors retry with exponential backoff and "equal jitter", at least Retry-After,
  until `max_age` after the row was written; permanent ones fail at once.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass

from hookwatch.notifiers.claims import Claimed
from hookwatch.notifiers.message import AlertMessage
from hookwatch.notifiers.render import duration

BACKOFF_BASE = 10.0
BACKOFF_CAP = 600.0
# Kinds that follow a trigger in an episode: they ride in its thread, and need it delivered.
FOLLOW_UPS = ("resolve", "acknowledge")


@dataclass(frozen=True)
class Earlier:
    """A trigger or reminder of this episode on this notifier, triggers first (claims.episode)."""

    state: str
    external_ref: str | None = None


@dataclass(frozen=True)
class Channel:
    """The notifier's state: configured or not, its policy, whether it is failing, its pace."""

    configured: bool
    send_resolved: bool = True
    down_until: float | None = None  # a temporary failure: nothing is tried before this
    min_interval: float = 0.0  # seconds between two sends to one destination (Slack: 1)
    last_sent: float | None = None  # the last send to this destination
    # The notifier keeps failing (notifiers.health) and has a fallback: its rows go there,
    # but for a probe now and then (`probe_due`) that tells when it works again.
    fallback: str | None = None
    probe_due: bool = True


# --- before the send -----------------------------------------------------------------------


@dataclass(frozen=True)
class Send:
    message: AlertMessage
    thread_ref: str | None  # the trigger's external ref (Slack thread ts), for follow-ups


@dataclass(frozen=True)
class Defer:
    """Back to pending without an attempt, due at `until`."""

    until: float


@dataclass(frozen=True)
class Suppress:
    reason: str


@dataclass(frozen=True)
class Fail:
    """Failed for good, without an attempt (or, after one, `GiveUp`)."""

    reason: str


@dataclass(frozen=True)
class Reroute:
    """Handed to the notifier's fallback: this row fails with `reason`, a copy goes to `to`."""

    to: str
    reason: str


Before = Send | Defer | Suppress | Fail | Reroute


def _reroute(row: Claimed, fallback: str) -> Reroute:
    return Reroute(fallback, f"notifier {row.notifier!r} keeps failing; handed to its "
                             f"fallback {fallback!r}")


def decide(row: Claimed, channel: Channel, earlier: Sequence[Earlier], *, now: float) -> Before:
    """What to do with a claimed row before any network call."""
    if not channel.configured:
        return Fail(f"notifier {row.notifier!r} is not in the config (any more)")
    if channel.fallback is not None and row.kind != "test" and (
            not channel.probe_due or channel.down_until is not None):
        return _reroute(row, channel.fallback)
    if channel.down_until is not None:
        return Defer(max(row.due_at, channel.down_until))
    if row.kind == "resolve" and not channel.send_resolved:
        return Suppress("send_resolved is false for this notifier")
    thread_ref = None
    if row.kind not in ("trigger", "test"):
        delivered = [e for e in earlier if e.state == "sent"]
        if row.kind in FOLLOW_UPS and earlier and not delivered:
            return Suppress(f"its trigger was never delivered ({earlier[-1].state})")
        refs = [e.external_ref for e in delivered if e.external_ref]
        thread_ref = refs[0] if refs else None
    if channel.min_interval > 0 and channel.last_sent is not None:
        slot = channel.last_sent + channel.min_interval
        if now < slot:
            return Defer(slot)
    try:
        message = AlertMessage.from_json(json.loads(row.payload))
    except (ValueError, TypeError, KeyError):
        return Fail("the outbox payload is not a valid alert message")
    return Send(message, thread_ref)


# --- after a failed send -------------------------------------------------------------------


@dataclass(frozen=True)
class Retry:
    at: float
    delay: float


@dataclass(frozen=True)
class GiveUp:
    reason: str


After = Retry | GiveUp | Reroute


def backoff(attempt: int, jitter: float) -> float:
    """10 s, 20 s, 40 s … capped at 10 min, each with "equal jitter" (half fixed, half random;
    `jitter` is a draw from [0, 1)).

    https://aws.amazon.com/blogs/architecture/exponential-backoff-and-jitter/
    """
    ceiling = min(BACKOFF_CAP, BACKOFF_BASE * 2 ** max(attempt - 1, 0))
    return ceiling / 2 + jitter * ceiling / 2


def after_failure(
    row: Claimed, *, detail: str, retryable: bool, retry_after: float | None, now: float,
    max_age: float, jitter: float, fallback: str | None = None,
) -> After:
    """A send failed with `detail` (already redacted): retry at T, give up for good, or, when
    the notifier keeps failing and has a `fallback`, hand the row to it."""
    if fallback is not None and row.kind != "test":
        return _reroute(row, fallback)
    if not retryable:
        return GiveUp(detail)
    attempts = row.attempts + 1
    delay = backoff(attempts, jitter)
    if retry_after is not None:
        delay = max(delay, retry_after)
    if now + delay > row.created_at + max_age:
        return GiveUp(f"gave up after {attempts} attempt(s) over "
                      f"{duration(now - row.created_at)}: {detail}")
    return Retry(now + delay, delay)
