"""The delivery decision on its own: tables of (row, channel, episode, now) -> decision, and of
failures -> retry at T / give up. No database, no network, no clock."""

from __future__ import annotations

import dataclasses
import json
from typing import Any

import pytest

from hookwatch.notifiers.claims import Claimed
from hookwatch.notifiers.decision import (
    BACKOFF_CAP,
    Before,
    Channel,
    Defer,
    Earlier,
    Fail,
    GiveUp,
    Retry,
    Send,
    Suppress,
    after_failure,
    backoff,
    decide,
)
from tests.notifiers.helpers import alert

NOW = 1_795_000_100.0
PAYLOAD = json.dumps(alert().to_json())


def row(kind: str = "trigger", **changes: Any) -> Claimed:
    base = Claimed(id=5, alert_key="k", notifier="team", kind=kind, payload=PAYLOAD,
                   created_at=NOW - 60, due_at=NOW - 1, attempts=0)
    return dataclasses.replace(base, **changes)


UP = Channel(configured=True)
SENT = Earlier("sent", "1795000000.000100")

CASES: list[tuple[str, Claimed, Channel, list[Earlier], Before]] = [
    ("a trigger is sent", row(), UP, [], Send(alert(), None)),
    ("a test message is sent", row("test"), UP, [], Send(alert(), None)),
    ("a notifier gone from the config fails the row", row(), Channel(configured=False), [],
     Fail("notifier 'team' is not in the config (any more)")),
    ("a failing notifier defers its other rows to its retry time", row(),
     dataclasses.replace(UP, down_until=NOW + 30), [], Defer(NOW + 30)),
    ("... but never to before the row's own due time", row(due_at=NOW + 90),
     dataclasses.replace(UP, down_until=NOW + 30), [], Defer(NOW + 90)),
    ("send_resolved = false suppresses a resolution", row("resolve"),
     dataclasses.replace(UP, send_resolved=False), [SENT],
     Suppress("send_resolved is false for this notifier")),
    ("send_resolved = false still sends an acknowledgement", row("acknowledge"),
     dataclasses.replace(UP, send_resolved=False), [SENT], Send(alert(), SENT.external_ref)),
    ("a resolution rides in its trigger's thread", row("resolve"), UP, [SENT],
     Send(alert(), SENT.external_ref)),
    ("a resolution whose trigger failed for good is suppressed", row("resolve"), UP,
     [Earlier("failed")], Suppress("its trigger was never delivered (failed)")),
    ("an acknowledgement whose trigger was suppressed is suppressed", row("acknowledge"), UP,
     [Earlier("suppressed")], Suppress("its trigger was never delivered (suppressed)")),
    ("a resolution with no trigger on this notifier is sent", row("resolve"), UP, [],
     Send(alert(), None)),
    ("a reminder is sent even when its trigger failed", row("reminder"), UP,
     [Earlier("failed")], Send(alert(), None)),
    ("the first delivered row with a ref is the thread", row("resolve"), UP,
     [Earlier("sent", None), Earlier("sent", "r2"), Earlier("sent", "r3")], Send(alert(), "r2")),
    ("a paced notifier waits for its slot", row(),
     dataclasses.replace(UP, min_interval=1.0, last_sent=NOW - 0.25), [], Defer(NOW + 0.75)),
    ("a paced notifier sends once its slot has come", row(),
     dataclasses.replace(UP, min_interval=1.0, last_sent=NOW - 1.0), [], Send(alert(), None)),
    ("an unreadable payload fails the row", row(payload="{not json"), UP, [],
     Fail("the outbox payload is not a valid alert message")),
    ("a payload that is no alert message fails the row", row(payload='{"kind": "trigger"}'),
     UP, [], Fail("the outbox payload is not a valid alert message")),
]


@pytest.mark.parametrize(("why", "claimed", "channel", "earlier", "expected"), CASES,
                         ids=[c[0] for c in CASES])
def test_decide(why: str, claimed: Claimed, channel: Channel, earlier: list[Earlier],
                expected: Before) -> None:
    assert decide(claimed, channel, earlier, now=NOW) == expected


def test_the_checks_come_in_order() -> None:
    """Gone beats failing beats send_resolved beats the episode beats the pace beats the
    payload: each case above would answer otherwise if the order changed."""
    everything = Channel(configured=False, send_resolved=False, down_until=NOW + 5,
                         min_interval=1.0, last_sent=NOW)
    bad = row("resolve", payload="{")
    steps = [
        (everything, Fail("notifier 'team' is not in the config (any more)")),
        (dataclasses.replace(everything, configured=True), Defer(NOW + 5)),
        (dataclasses.replace(everything, configured=True, down_until=None),
         Suppress("send_resolved is false for this notifier")),
        (dataclasses.replace(everything, configured=True, down_until=None, send_resolved=True),
         Suppress("its trigger was never delivered (failed)")),
    ]
    for channel, expected in steps:
        assert decide(bad, channel, [Earlier("failed")], now=NOW) == expected
    up = Channel(configured=True, min_interval=1.0, last_sent=NOW)
    assert decide(bad, up, [SENT], now=NOW) == Defer(NOW + 1.0)
    assert decide(bad, dataclasses.replace(up, last_sent=None), [SENT], now=NOW) == \
        Fail("the outbox payload is not a valid alert message")


@pytest.mark.parametrize(("attempt", "jitter", "delay"), [
    (1, 0.0, 5.0), (1, 0.999, 9.995), (2, 0.5, 15.0), (3, 0.0, 20.0), (4, 1.0, 80.0),
    (7, 0.0, 300.0), (30, 0.5, 450.0),
])
def test_backoff_doubles_with_equal_jitter_up_to_the_cap(attempt: int, jitter: float,
                                                         delay: float) -> None:
    assert backoff(attempt, jitter) == pytest.approx(delay)
    assert backoff(attempt, jitter) <= BACKOFF_CAP


FAILURES: list[tuple[str, dict[str, Any], Any]] = [
    ("a permanent error gives up at once", {"retryable": False}, GiveUp("HTTP 400")),
    ("a temporary one retries after the backoff", {}, Retry(NOW + 7.5, 7.5)),
    ("Retry-After longer than the backoff wins", {"retry_after": 120.0},
     Retry(NOW + 120.0, 120.0)),
    ("Retry-After shorter than the backoff does not", {"retry_after": 1.0},
     Retry(NOW + 7.5, 7.5)),
    ("the third attempt waits longer", {"attempts": 2}, Retry(NOW + 30.0, 30.0)),
    ("past max_age, it gives up and says how long it tried",
     {"retry_after": 3600.0, "max_age": 600.0},
     GiveUp("gave up after 1 attempt(s) over 1m: HTTP 400")),
]


@pytest.mark.parametrize(("why", "given", "expected"), FAILURES, ids=[f[0] for f in FAILURES])
def test_after_failure(why: str, given: dict[str, Any], expected: Any) -> None:
    claimed = row(attempts=given.get("attempts", 0))
    assert after_failure(
        claimed, detail="HTTP 400", retryable=given.get("retryable", True),
        retry_after=given.get("retry_after"), now=NOW, max_age=given.get("max_age", 86400.0),
        jitter=0.5,
    ) == expected
