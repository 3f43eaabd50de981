"""Refused webhooks counted by reason per minute, and logged at most once a minute a reason."""

from __future__ import annotations

import logging

import pytest

from hookwatch.hooks.refusals import Refusals, reason_for

T0 = 1_800_000_000.0  # a minute boundary (1_800_000_000 / 60 is whole)


def test_windows_count_refusals_by_reason_and_code_to_the_minute() -> None:
    tally = Refusals()
    for i in range(9):
        tally.accepted(T0 + i)
    for _ in range(38):
        tally.refused(401, "invalid_signature", T0 + 30)
    tally.refused(401, "malformed_signature", T0 + 31)
    tally.refused(401, "stale_timestamp", T0 + 200)
    tally.refused(401, "stale_timestamp", T0 + 201)
    recent = tally.window(T0 + 239, 5)
    assert (recent.received, recent.refused) == (50, 41)
    assert recent.reasons == {"bad_signature": 39, "stale_timestamp": 2}
    assert recent.codes == {"invalid_signature": 38, "malformed_signature": 1,
                            "stale_timestamp": 2}
    assert recent.top is not None and recent.top.label == "bad signature"
    # Five minutes later only minute 3's two stale ones are inside the 5-minute window.
    later = tally.window(T0 + 7 * 60, 5)
    assert (later.received, later.refused, later.reasons) == (2, 2, {"stale_timestamp": 2})
    assert tally.window(T0 + 7 * 60, 60).refused == 41
    # An hour on, the slots are reused: nothing is left.
    assert tally.window(T0 + 3600 + 240, 60).received == 0
    tally.accepted(T0 + 3600 + 250)  # the same slot as minute 4, an hour later
    assert tally.window(T0 + 3600 + 250, 60).received == 1


def test_a_code_the_table_does_not_know_is_its_own_reason() -> None:
    reason = reason_for("header_too_large", 431)
    assert (reason.key, reason.label, reason.hint) == (
        "header_too_large", "header too large", "HTTP 431")
    tally = Refusals()
    tally.refused(431, "header_too_large", T0)
    window = tally.window(T0, 5)
    assert window.top is not None and window.top.key == "header_too_large"


def test_one_log_line_per_reason_a_minute_with_the_count(
    caplog: pytest.LogCaptureFixture,
) -> None:
    tally = Refusals()
    caplog.set_level(logging.WARNING, logger="hookwatch.hooks")
    tally.refused(401, "invalid_signature", T0)
    for i in range(1, 40):
        tally.refused(401, "invalid_signature", T0 + i)
    tally.refused(413, "body_too_large", T0 + 5)  # another reason: its own line
    tally.refused(401, "malformed_signature", T0 + 59)
    assert len(caplog.records) == 2
    tally.refused(401, "invalid_signature", T0 + 61)
    lines = [r.getMessage() for r in caplog.records]
    assert len(lines) == 3
    assert lines[0] == ("a webhook was refused: bad signature (HTTP 401; 1 invalid_signature): "
                        "check HOOKWATCH_WEBHOOK_SECRETS against the sender's signing secret; "
                        "more of these are logged once a minute, with their count")
    assert "body too large (HTTP 413; 1 body_too_large)" in lines[1]
    # The 39 after the first line, the malformed one and the one now: 41, in one line.
    assert lines[2].startswith("41 webhooks refused in the last 61 s: bad signature "
                               "(HTTP 401; 40 invalid_signature, 1 malformed_signature)")
