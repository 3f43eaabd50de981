"""The demo's console says who heard of a firing alert: muted, nobody, or which notifiers."""

from __future__ import annotations

from typing import Any

from hookwatch.demo.watcher import AlertWatcher


def fired_lines(alert: dict[str, Any]) -> list[str]:
    lines: list[str] = []
    answers: list[Any] = [[], [{"id": 1, "state": "firing", "rule": "r", **alert}]]
    watcher = AlertWatcher(lambda: answers.pop(0), lines.append)
    watcher.poll(0.0)
    watcher.poll(1.0)
    return lines


def test_no_notifiers_is_said_plainly() -> None:
    lines = fired_lines({"notifications": []})
    assert "ALERT FIRING: r" in lines[0]
    assert "nobody was notified: no notifiers are configured" in lines[1]


def test_a_muted_alert_names_what_mutes_it() -> None:
    lines = fired_lines({"muted_by": "inhibited by model acme/demo", "notifications": []})
    assert "muted (inhibited by model acme/demo): nobody is notified" in lines[1]


def test_notified_channels_are_named() -> None:
    lines = fired_lines({"notifications": [{"notifier": "team"}, {"notifier": "oncall"},
                                           {"notifier": "team"}]})
    assert lines[1].endswith("notifying oncall, team")
