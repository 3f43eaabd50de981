"""Grouping, pure: (open groups, this evaluation's changes, now) -> the group notifications to
write. No database, no clock.

Alertmanager's grouping without its `group_wait`: the first alert of a group goes out at once;
alerts that join, change or resolve while the group is open are folded into one notification
per channel, at most once per `group_interval`. A group is per (group key, notifier): each
channel hears of the members routed to it. It closes when a notification saying that every
member resolved has left; the next alert with its key opens a new one.

Folding needs no timer: a notification is written due at the group's next slot, and later
changes rewrite it while it still waits in the outbox (`pending_kind` is its kind then). A
first notification is never rewritten into a resolution: that follows it, in its own row.
"""

from __future__ import annotations

import dataclasses
import hashlib
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Literal

LABELS = ("rule", "scope", "name", "model", "severity")
# When a rule says nothing: one group per rule (see README "Grouping"), 5 minutes apart.
DEFAULT_GROUP_BY = ("rule",)
DEFAULT_GROUP_INTERVAL = 300.0

Change = Literal["trigger", "resolve", "reminder"]
GroupKind = Literal["trigger", "update", "resolve", "reminder"]


@dataclass(frozen=True)
class Member:
    """One alert in a group, as the group's channel was (or will be) told of it."""

    alert_id: int
    alert_key: str
    rule: str
    scope: str
    name: str
    severity: str
    state: str  # firing | resolved
    summary: str = ""
    since: float = 0.0


@dataclass(frozen=True)
class Group:
    key: str
    notifier: str
    label: str  # "rule=model-error-rate", for people
    members: tuple[Member, ...] = ()
    opened_at: float = 0.0
    last_at: float = 0.0  # when the group's latest notification is (was) due
    pending_kind: str | None = None  # that notification's kind while it waits in the outbox
    generation: int = 0  # +1 each time the key opens a new group

    @property
    def closed(self) -> bool:
        """Every member resolved and the notification saying so has left."""
        return self.pending_kind is None and all(m.state == "resolved" for m in self.members)

    def firing(self) -> list[Member]:
        return [m for m in self.members if m.state == "firing"]


@dataclass(frozen=True)
class Event:
    """A member's change this evaluation, for one notifier."""

    key: str
    label: str
    notifier: str
    member: Member
    change: Change


@dataclass(frozen=True)
class Emit:
    """Write (fold=False) or rewrite (fold=True) the group's notification, due at `due_at`."""

    group: Group  # the group after the change
    kind: GroupKind
    due_at: float
    fold: bool


def group_key(labels: Mapping[str, str], group_by: Sequence[str]) -> tuple[str, str]:
    """(key, label): the key is short and stable (an outbox alert_key, PagerDuty's dedup_key),
    the label says what the group shares."""
    label = ",".join(f"{name}={labels.get(name, '')}" for name in sorted(set(group_by)))
    digest = hashlib.sha256(label.encode()).hexdigest()[:24]
    return f"group-{digest}", label or "all alerts"


def plan(groups: Mapping[tuple[str, str], Group], events: Iterable[Event], *, now: float,
         intervals: Mapping[str, float]) -> list[Emit]:
    """What to write for this evaluation's events; `intervals`: group key -> group_interval."""
    by_group: dict[tuple[str, str], list[Event]] = {}
    for event in events:
        by_group.setdefault((event.key, event.notifier), []).append(event)
    emits: list[Emit] = []
    for (key, notifier), todo in by_group.items():
        emit = _one(groups.get((key, notifier)), todo, now=now,
                    interval=intervals.get(key, DEFAULT_GROUP_INTERVAL))
        if emit is not None:
            emits.append(emit)
    return emits


def _merge(members: Sequence[Member], events: Sequence[Event]) -> tuple[Member, ...]:
    merged = {m.alert_id: m for m in members}
    for event in events:
        known = merged.get(event.member.alert_id)
        if event.change == "resolve" and known is None:
            continue  # never told of it in this group: nothing to take back
        merged[event.member.alert_id] = event.member
    return tuple(sorted(merged.values(), key=lambda m: (m.state != "firing", m.since, m.name)))


def _one(group: Group | None, events: Sequence[Event], *, now: float,
         interval: float) -> Emit | None:
    first = events[0]
    if group is None or group.closed:
        members = _merge((), [e for e in events if e.change != "resolve"])
        if not members:
            return None
        opened = Group(first.key, first.notifier, first.label, members, opened_at=now,
                       last_at=now, pending_kind="trigger",
                       generation=(group.generation + 1) if group else 1)
        return Emit(opened, "trigger", now, fold=False)
    members = _merge(group.members, events)
    if members == group.members and all(e.change != "reminder" for e in events):
        return None
    changes = {e.change for e in events}
    if all(m.state == "resolved" for m in members):
        kind: GroupKind = "resolve"
    elif group.pending_kind == "trigger":
        kind = "trigger"  # the first notification has not left: it now names more alerts
    elif changes == {"reminder"} and group.pending_kind in (None, "reminder"):
        kind = "reminder"
    else:
        kind = "update"
    if group.pending_kind is not None and not (kind == "resolve" and
                                                group.pending_kind == "trigger"):
        due, fold = group.last_at, True
    else:
        due, fold = max(now, group.last_at + interval), False
    after = dataclasses.replace(group, members=members, last_at=due, pending_kind=kind)
    return Emit(after, kind, due, fold)
