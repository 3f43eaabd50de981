"""Watching hookwatch's alerts (GET /api/alerts), tolerant of its shape and of its absence."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import httpx

from hookwatch.demo.console import at


def _alert_items(payload: Any) -> list[Mapping[str, Any]]:
    if isinstance(payload, Mapping):
        payload = payload.get("alerts", payload.get("items", []))
    if not isinstance(payload, list):
        return []
    return [a for a in payload if isinstance(a, Mapping)]


def _alert_key(alert: Mapping[str, Any]) -> str:
    if alert.get("id") is not None:
        return str(alert["id"])
    return "|".join(str(alert.get(k)) for k in ("rule", "scope", "scope_name", "name"))


def _alert_state(alert: Mapping[str, Any]) -> str:
    return str(alert.get("state") or alert.get("status") or "").lower()


def describe_alert(alert: Mapping[str, Any]) -> str:
    """One alert as a short phrase: its rule, where it fires, and its summary or value."""
    rule = alert.get("rule") or alert.get("rule_name") or alert.get("alertname") or "alert"
    if isinstance(rule, Mapping):
        rule = rule.get("name", "alert")
    scope = alert.get("scope")
    name = alert.get("scope_name") or alert.get("name") or alert.get("target")
    where = " ".join(str(x) for x in (scope, name) if x and x != rule)
    summary = alert.get("summary")
    value = alert.get("value") if alert.get("value") is not None else alert.get("error_rate")
    if summary:
        shown = f": {summary}"
    elif isinstance(value, float):
        shown = f" (value {value:.0%})"
    else:
        shown = ""
    return f"{rule}{' on ' + where if where else ''}{shown}"


def who_was_told(alert: Mapping[str, Any]) -> str:
    """Whether anybody heard of a firing alert: muted, no notifiers, or which ones."""
    muted_by = alert.get("muted_by")
    if muted_by:
        return f"muted ({muted_by}): nobody is notified of this one"
    notes = alert.get("notifications")
    names = sorted({str(n.get("notifier")) for n in notes if isinstance(n, Mapping)}
                   if isinstance(notes, list) else set())
    if names:
        return f"notifying {', '.join(names)}"
    if isinstance(notes, list):
        return ("nobody was notified: no notifiers are configured "
                "(give `--config FILE` with [notifiers.*]; see hookwatch.example.toml)")
    return "(the alert does not say who was notified)"


class AlertWatcher:
    """Turns successive GET /api/alerts answers into 'fired' and 'resolved' lines."""

    def __init__(self, fetch: Callable[[], Any | None], log: Callable[[str], None]) -> None:
        # fetch returns the parsed JSON, or None while the endpoint is not there (404).
        self.fetch = fetch
        self.log = log
        self.states: dict[str, str] = {}
        self.fired = 0
        self.resolved = 0
        self.unavailable_said = False

    @property
    def firing(self) -> bool:
        return any(s == "firing" for s in self.states.values())

    def poll(self, elapsed: float) -> None:
        try:
            payload = self.fetch()
        except (httpx.HTTPError, ValueError) as exc:
            self.log(at(elapsed, f"could not read alerts: {exc}"))
            return
        if payload is None:
            if not self.unavailable_said:
                unavailable = "GET /api/alerts is not available (404): watch the dashboard instead"
                self.log(at(elapsed, unavailable))
                self.unavailable_said = True
            return
        seen: dict[str, str] = {}
        for alert in _alert_items(payload):
            key = _alert_key(alert)
            state = _alert_state(alert)
            seen[key] = state
            before = self.states.get(key)
            if state == before:
                continue
            if state == "firing":
                self.fired += 1
                self.log(at(elapsed, f"ALERT FIRING: {describe_alert(alert)}"))
                self.log(at(elapsed, "  " + who_was_told(alert)))
            elif state == "pending" and before is None:
                self.log(at(elapsed, f"alert pending: {describe_alert(alert)}"))
            elif state in ("resolved", "inactive") and before == "firing":
                self.resolved += 1
                self.log(at(elapsed, f"ALERT RESOLVED: {describe_alert(alert)}"))
        for key, before in self.states.items():
            # An API that lists only open alerts resolves one by leaving it out.
            if key not in seen and before == "firing":
                self.resolved += 1
                self.log(at(elapsed, f"ALERT RESOLVED: {key}"))
        self.states = seen
