"""Alert groups in the database: the groups an evaluation touches, read in its transaction, and
alerts.group.plan's decisions carried out as outbox rows in the same transaction (so a restart
or a new leader never sends a group twice or loses a member)."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass, field

import orjson
from sqlalchemy import update
from sqlmodel import Session, col, select

from hookwatch.alerts.compose import compose
from hookwatch.alerts.group import Emit, Event, Group, Member, group_key, plan
from hookwatch.alerts.rules import Rule
from hookwatch.notifiers.message import GROUP_LISTED, AlertMessage, GroupEntry, GroupInfo
from hookwatch.storage.tables import Alert, AlertGroup, Notification

PREFIX = {"trigger": "FIRING", "update": "UPDATE", "reminder": "STILL FIRING",
          "resolve": "RESOLVED"}


def model_of(scope: str, name: str, deployment_models: Mapping[str, set[str]]) -> str:
    """The `model` label: the model itself, a version's model, a deployment's (if known)."""
    if scope == "model":
        return name
    if scope == "version":
        return name.rpartition(":")[0] or name
    models = sorted(deployment_models.get(name, ()))
    return models[0] if len(models) == 1 else ""


@dataclass
class Outbox:
    """What one evaluation hands to the groups: member events and the messages composed for
    this evaluation's alerts (they carry the top errors)."""

    events: list[Event] = field(default_factory=list)
    messages: dict[int, AlertMessage] = field(default_factory=dict)
    intervals: dict[str, float] = field(default_factory=dict)

    def add(self, row: Alert, rule: Rule, *, change: str, notifiers: tuple[str, ...],
            message: AlertMessage, model: str) -> None:
        labels = {"rule": rule.name, "scope": row.scope, "name": row.name, "model": model,
                  "severity": row.severity}
        key, label = group_key(labels, rule.group_by)
        member = _member(row, resolved=change == "resolve")
        for notifier in notifiers:
            self.events.append(Event(key, label, notifier, member, change))  # type: ignore[arg-type]
        self.messages[row.id or 0] = message
        self.intervals[key] = rule.group_interval

    def retire(self, row: Alert, groups: Mapping[tuple[str, str], Group],
               message: AlertMessage) -> None:
        """An alert whose rule left the config resolves in every group that holds it."""
        member = _member(row, resolved=True)
        for (key, notifier), group in groups.items():
            if any(m.alert_id == row.id for m in group.members) and not group.closed:
                self.events.append(Event(key, group.label, notifier, member, "resolve"))
                self.messages[row.id or 0] = message


def _member(row: Alert, *, resolved: bool) -> Member:
    return Member(row.id or 0, row.key, row.rule, row.scope, row.name, row.severity,
                  "resolved" if resolved else "firing", summary=row.summary,
                  since=row.fired_at if row.fired_at is not None else row.since)


def load_groups(session: Session, keys: set[str] | None = None
                ) -> dict[tuple[str, str], tuple[AlertGroup, Group]]:
    """The group rows (of `keys`, when given), with whether each one's latest notification
    still waits (may be rewritten)."""
    if keys is not None and not keys:
        return {}
    stmt = select(AlertGroup).order_by(col(AlertGroup.id))
    if keys is not None:
        stmt = stmt.where(col(AlertGroup.key).in_(sorted(keys)))
    rows = list(session.exec(stmt))
    waiting = [r.pending_id for r in rows if r.pending_id is not None]
    kinds: dict[int, str] = {}
    if waiting:
        query = select(Notification.id, Notification.kind).where(
            col(Notification.id).in_(waiting), Notification.state == "pending")
        kinds = {i: k for i, k in session.exec(query) if i is not None}
    found: dict[tuple[str, str], tuple[AlertGroup, Group]] = {}
    for r in rows:
        members = tuple(Member(**m) for m in orjson.loads(r.members))
        pending = kinds.get(r.pending_id) if r.pending_id is not None else None
        found[(r.key, r.notifier)] = (r, Group(r.key, r.notifier, r.label, members,
                                               r.opened_at, r.last_at, pending, r.generation))
    return found


def group_message(emit: Emit, outbox: Outbox, alerts: Mapping[int, Alert], *, now: float,
                  base_url: str) -> AlertMessage:
    """The message for the group as it is now: its first firing alert's message (or its last
    resolved one), speaking for the group."""
    group = emit.group
    firing = group.firing()
    lead = firing[0] if firing else group.members[-1]
    base = outbox.messages.get(lead.alert_id)
    if base is None:
        base = compose(alerts[lead.alert_id], now=now, base_url=base_url,
                       kind="resolve" if lead.state == "resolved" else "trigger")
    entries = [GroupEntry(m.rule, m.scope, m.name, m.severity, m.state, m.summary)
               for m in group.members[:GROUP_LISTED]]
    info = GroupInfo(group.key, group.label, len(firing), len(group.members) - len(firing),
                     entries)
    changes: dict[str, object] = {"kind": emit.kind, "alert_key": group.key, "group": info,
                                  "at": now}
    if info.total > 1:
        changes["summary"] = (f"[{PREFIX[emit.kind]}] {info.total} alerts for {group.label}: "
                              f"{info.firing} firing, {info.resolved} resolved")
        changes["alert_url"] = base.dashboard_url
    if emit.kind == "resolve":
        changes["resolved_at"] = now
    return dataclasses.replace(base, **changes)  # type: ignore[arg-type]


def write_groups(session: Session, outbox: Outbox, alerts: Mapping[int, Alert], *, now: float,
                 base_url: str, loaded: dict[tuple[str, str], tuple[AlertGroup, Group]]
                 ) -> int:
    """Carry out the plan for this evaluation's events; returns the outbox rows written."""
    if not outbox.events:
        return 0
    emits = plan({k: g for k, (_r, g) in loaded.items()}, outbox.events, now=now,
                 intervals=outbox.intervals)
    written = 0
    for emit in emits:
        group = emit.group
        row = loaded.get((group.key, group.notifier), (None, None))[0]
        message = group_message(emit, outbox, alerts, now=now, base_url=base_url)
        payload = orjson.dumps(message.to_json()).decode()
        pending_id: int | None = None
        if emit.fold and row is not None and row.pending_id is not None:
            rewritten = session.exec(
                update(Notification).where(col(Notification.id) == row.pending_id,
                                           col(Notification.state) == "pending")
                .values(kind=emit.kind, payload=payload)
            ).rowcount
            if rewritten:
                pending_id = row.pending_id
            else:  # it left in the meantime: the next slot, as a new row
                due = max(now, emit.due_at + outbox.intervals.get(group.key, 0.0))
                emit = dataclasses.replace(emit, due_at=due, fold=False)
                group = dataclasses.replace(group, last_at=due)
        if not emit.fold:
            lead = group.firing()[0] if group.firing() else group.members[-1]
            note = Notification(alert_id=lead.alert_id, alert_key=group.key,
                                notifier=group.notifier, kind=emit.kind, payload=payload,
                                state="pending", created_at=now, due_at=emit.due_at)
            session.add(note)
            session.flush()
            pending_id = note.id
            written += 1
        if row is None:
            row = AlertGroup(key=group.key, notifier=group.notifier, label=group.label,
                             opened_at=group.opened_at, last_at=group.last_at)
            session.add(row)
        row.label, row.generation, row.opened_at = group.label, group.generation, group.opened_at
        row.last_at, row.pending_id = group.last_at, pending_id
        members = [dataclasses.asdict(m) for m in group.members]
        if group.closed or emit.kind == "resolve":
            members = [m for m in members if m["state"] == "firing"]  # the next group starts empty
        row.members = orjson.dumps(members).decode()
    return written
