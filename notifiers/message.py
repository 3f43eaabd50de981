"""The message a notifier delivers: plain data, written into the outbox as JSON."""

from __future__ import annotations

import hashlib
from dataclasses import asdict, dataclass, field
from typing import Any, Literal

# update: a later change in an alert group (alerts/group.py): alerts joined, resolved or changed
Kind = Literal["trigger", "update", "resolve", "acknowledge", "reminder", "test"]
# A grouped message names at most this many alerts, then says "and N more".
GROUP_LISTED = 10


@dataclass(frozen=True)
class TopError:
    fingerprint: str  # the masked error text, e.g. "CUDA out of memory. Tried <n> GiB"
    count: int
    example: str

    @property
    def label(self) -> str:
        """A short, stable id for the group: a slice of the masked text would read
        "[CUDA out of ]", so the label is a hash of it."""
        return hashlib.sha256(self.fingerprint.encode()).hexdigest()[:8]


@dataclass(frozen=True)
class GroupEntry:
    """One alert a grouped message names."""

    rule: str
    scope: str
    name: str
    severity: str
    state: str  # firing | resolved
    summary: str = ""


@dataclass(frozen=True)
class GroupInfo:
    """The group a message speaks for: how many alerts it holds, and (capped) which."""

    key: str
    label: str  # what its alerts share, e.g. "rule=model-error-rate"
    firing: int
    resolved: int
    entries: list[GroupEntry] = field(default_factory=list)  # firing first, at most GROUP_LISTED

    @property
    def total(self) -> int:
        return self.firing + self.resolved

    @property
    def more(self) -> int:
        return self.total - len(self.entries)


@dataclass(frozen=True)
class AlertMessage:
    """Everything a channel needs to tell people about one alert transition."""

    kind: Kind
    alert_key: str  # stable per (rule, scope, name): PagerDuty's dedup_key, Slack's thread key
    alert_id: int
    rule: str
    rule_kind: str  # error_rate | burn_rate | stuck | no_traffic | latency | spend
    severity: str  # critical | error | warning | info
    scope: str  # model | deployment | version
    scope_name: str
    summary: str  # one line, plain text
    started_at: float
    at: float  # when this transition happened
    value: float | None = None  # the observed rate or count
    threshold: float | None = None
    window_seconds: float | None = None
    counts: dict[str, int] = field(default_factory=dict)  # succeeded, failed, canceled, aborted
    top_errors: list[TopError] = field(default_factory=list)
    resolved_at: float | None = None
    acknowledged_by: str | None = None
    acknowledge_comment: str | None = None
    dashboard_url: str = ""
    alert_url: str = ""
    # Set when the message speaks for an alert group: alert_key is then the group's key.
    group: GroupInfo | None = None

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> AlertMessage:
        values = dict(data)
        values["top_errors"] = [TopError(**e) for e in values.get("top_errors", [])]
        group = values.get("group")
        if group is not None:
            entries = [GroupEntry(**e) for e in group.get("entries", [])]
            values["group"] = GroupInfo(**{**group, "entries": entries})
        return cls(**values)
