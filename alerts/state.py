"""The alert state machine: inactive -> pending -> firing -> resolved, with hysteresis."""

from __future__ import annotations

import dataclasses
import hashlib
from dataclasses import dataclass

INACTIVE, PENDING, FIRING, RESOLVED = "inactive", "pending", "firing", "resolved"
OPEN = (PENDING, FIRING)


def alert_key(rule: str, scope: str, name: str) -> str:
    """Stable per instance, fits PagerDuty's dedup_key and the outbox's 100 characters."""
    digest = hashlib.sha256(f"{rule}\0{scope}\0{name}".encode()).hexdigest()
    return f"hookwatch-{digest[:32]}"


@dataclass(frozen=True)
class AlertState:
    """An alert instance as the pure logic sees it (storage maps it to storage.tables.Alert)."""

    rule: str
    scope: str
    name: str
    state: str = INACTIVE
    since: float = 0.0
    episode: int = 0
    fired_at: float | None = None
    clear_since: float | None = None
    resolved_at: float | None = None
    value: float | None = None
    muted_by: str | None = None
    notified: bool = False
    last_notified_at: float | None = None
    acked_by: str | None = None

    @property
    def key(self) -> str:
        return alert_key(self.rule, self.scope, self.name)


def step(
    prior: AlertState,
    breach: bool | None,
    *,
    for_: float,
    keep_firing_for: float,
    now: float,
    value: float | None = None,
) -> AlertState:
    """The next state, given this evaluation's verdict.

    breach None (no verdict, e.g. under min_predictions) changes nothing, except that a
    pending alert drops back: `for` needs the condition seen to hold the whole time. A firing
    alert resolves only after the condition has been clear for `keep_firing_for`.
    """
    s = prior if value is None or value == prior.value else dataclasses.replace(prior, value=value)
    if s.state in (INACTIVE, RESOLVED):
        if not breach:
            return s
        fresh = dataclasses.replace(
            s, episode=s.episode + 1, since=now, fired_at=None, clear_since=None,
            resolved_at=None, notified=False, last_notified_at=None, acked_by=None,
        )
        if for_ <= 0:
            return dataclasses.replace(fresh, state=FIRING, fired_at=now)
        return dataclasses.replace(fresh, state=PENDING)
    if s.state == PENDING:
        if not breach:
            return dataclasses.replace(s, state=INACTIVE, since=now)
        if now - s.since >= for_:
            return dataclasses.replace(s, state=FIRING, since=now, fired_at=now)
        return s
    # FIRING
    if breach:
        return dataclasses.replace(s, clear_since=None)
    if breach is None:
        return s
    clear_since = s.clear_since if s.clear_since is not None else now
    if now - clear_since >= keep_firing_for:
        return dataclasses.replace(
            s, state=RESOLVED, since=now, resolved_at=now, clear_since=None
        )
    return dataclasses.replace(s, clear_since=clear_since)
