"""Routing and repeat/acknowledge bookkeeping: which notification a decided state causes."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

from hookwatch.alerts.rules import Rule
from hookwatch.alerts.state import FIRING, RESOLVED, AlertState
from hookwatch.notifiers.message import Kind


@dataclass(frozen=True)
class Outgoing:
    """One notification for every notifier of the rule (`route`)."""

    kind: Kind  # trigger | reminder | resolve
    suppressed: bool = False  # recorded for history, never delivered


def route(rule: Rule) -> tuple[str, ...]:
    """The notifier names a rule's notifications go to."""
    return rule.notify


def plan(rule: Rule, before: AlertState, after: AlertState, now: float
         ) -> tuple[AlertState, Outgoing | None]:
    """The notification this evaluation causes, and the bookkeeping it updates.

    - going firing: a trigger (suppressed while muted by a silence or an inhibition);
    - still firing: the trigger a mute held back, once the mute ends; else a reminder every
      `repeat_interval` (0: never) unless acknowledged;
    - resolving: a resolve, if a trigger went out, even while muted, so that an incident a
      channel opened (PagerDuty) is closed.
    """
    if after.state == FIRING:
        muted = after.muted_by is not None
        if before.state != FIRING or before.episode != after.episode:
            if muted:
                return after, Outgoing("trigger", suppressed=True)
            return _sent(after, now), Outgoing("trigger")
        if muted:
            return after, None
        if not after.notified:
            return _sent(after, now), Outgoing("trigger")
        due = (after.last_notified_at or after.fired_at or now) + rule.repeat_interval
        if rule.repeat_interval > 0 and after.acked_by is None and now >= due:
            return _sent(after, now), Outgoing("reminder")
        return after, None
    if after.state == RESOLVED and before.state == FIRING and after.notified:
        return _sent(after, now), Outgoing("resolve")
    return after, None


def _sent(state: AlertState, now: float) -> AlertState:
    return dataclasses.replace(state, notified=True, last_notified_at=now)
