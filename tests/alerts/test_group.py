"""The pure grouping decision, table by table: no database, no clock."""

from __future__ import annotations

import dataclasses

from hookwatch.alerts.group import Emit, Event, Group, Member, group_key, plan

KEY, LABEL = group_key({"rule": "model-error-rate"}, ["rule"])
NOW = 1_795_000_000.0
INTERVALS = {KEY: 300.0}


def member(i: int, state: str = "firing") -> Member:
    return Member(i, f"alert-{i}", "model-error-rate", "model", f"acme/m{i}", "error", state,
                  since=NOW + i)


def event(i: int, change: str = "trigger", *, notifier: str = "team") -> Event:
    state = "resolved" if change == "resolve" else "firing"
    return Event(KEY, LABEL, notifier, member(i, state), change)  # type: ignore[arg-type]


def one(groups: dict[tuple[str, str], Group], events: list[Event], now: float) -> Emit:
    (emit,) = plan(groups, events, now=now, intervals=INTERVALS)
    return emit


def test_the_key_is_the_labels_only() -> None:
    a = group_key({"rule": "r", "scope": "model", "name": "x"}, ["rule"])
    b = group_key({"rule": "r", "scope": "deployment", "name": "y"}, ["rule"])
    c = group_key({"rule": "r", "scope": "model", "name": "x"}, ["rule", "name"])
    assert a == b and a != c
    assert a[1] == "rule=r" and c[1] == "name=x,rule=r" and len(a[0]) <= 64


def test_the_first_alert_goes_at_once_and_a_storm_is_one_message() -> None:
    emit = one({}, [event(i) for i in range(100)], NOW)
    assert (emit.kind, emit.due_at, emit.fold) == ("trigger", NOW, False)
    assert len(emit.group.members) == 100 and emit.group.generation == 1


def test_later_changes_fold_into_one_notification_per_interval() -> None:
    opened = one({}, [event(1)], NOW).group
    sent = dataclasses.replace(opened, pending_kind=None)  # the trigger left
    joined = one({(KEY, "team"): sent}, [event(2)], NOW + 10)
    assert (joined.kind, joined.due_at, joined.fold) == ("update", NOW + 300, False)
    # Still waiting in the outbox: the next change rewrites it, due at the same slot.
    third = one({(KEY, "team"): joined.group}, [event(3), event(1, "resolve")], NOW + 20)
    assert (third.kind, third.due_at, third.fold) == ("update", NOW + 300, True)
    assert [m.state for m in third.group.members] == ["firing", "firing", "resolved"]
    # Past the slot, a change is due at once.
    left = dataclasses.replace(third.group, pending_kind=None)
    later = one({(KEY, "team"): left}, [event(4)], NOW + 900)
    assert (later.due_at, later.fold) == (NOW + 900, False)


def test_a_change_before_the_first_message_left_joins_it() -> None:
    opened = one({}, [event(1)], NOW).group
    emit = one({(KEY, "team"): opened}, [event(2)], NOW + 0.2)
    assert (emit.kind, emit.due_at, emit.fold) == ("trigger", NOW, True)
    assert len(emit.group.members) == 2


def test_the_group_resolves_with_its_last_alert_then_closes() -> None:
    opened = dataclasses.replace(one({}, [event(1), event(2)], NOW).group, pending_kind=None)
    half = one({(KEY, "team"): opened}, [event(1, "resolve")], NOW + 60)
    assert half.kind == "update"
    done = one({(KEY, "team"): dataclasses.replace(half.group, pending_kind=None)},
               [event(2, "resolve")], NOW + 400)
    assert (done.kind, done.due_at) == ("resolve", NOW + 600)  # the slot after the update
    closed = dataclasses.replace(done.group, pending_kind=None)
    assert closed.closed
    # The next alert with the key opens a new group, sent at once.
    again = one({(KEY, "team"): closed}, [event(5)], NOW + 610)
    assert (again.kind, again.due_at, again.group.generation) == ("trigger", NOW + 610, 2)
    assert [m.alert_id for m in again.group.members] == [5]


def test_a_first_message_is_never_rewritten_into_a_resolution() -> None:
    opened = one({}, [event(1)], NOW).group
    emit = one({(KEY, "team"): opened}, [event(1, "resolve")], NOW + 0.1)
    assert (emit.kind, emit.fold, emit.due_at) == ("resolve", False, NOW + 300)


def test_each_channel_has_its_own_group() -> None:
    emits = plan({}, [event(1, notifier="team"), event(2, notifier="oncall")], now=NOW,
                 intervals=INTERVALS)
    assert sorted((e.group.notifier, e.kind) for e in emits) == [
        ("oncall", "trigger"), ("team", "trigger")]


def test_nothing_new_writes_nothing_and_a_lone_resolve_is_ignored() -> None:
    opened = dataclasses.replace(one({}, [event(1)], NOW).group, pending_kind=None)
    assert plan({(KEY, "team"): opened}, [event(1)], now=NOW + 5, intervals=INTERVALS) == []
    assert plan({}, [event(9, "resolve")], now=NOW, intervals=INTERVALS) == []


def test_reminders_fold_like_any_change() -> None:
    opened = dataclasses.replace(one({}, [event(1)], NOW).group, pending_kind=None)
    emit = one({(KEY, "team"): opened}, [event(1, "reminder")], NOW + 4 * 3600)
    assert (emit.kind, emit.due_at) == ("reminder", NOW + 4 * 3600)
