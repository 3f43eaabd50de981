"""The whole picture at one instant: scopes with their status, open alerts, failure groups.

A page of it is cut per request from dashboard.listing's shared summary, for the page and
/api/status. Filtering, sorting and paging are done on the server, so a refresh keeps the
viewer's choice.
"""

from __future__ import annotations

import fnmatch
import re
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from fnmatch import fnmatchcase
from typing import Any

from hookwatch.alerts.rules import Rule
from hookwatch.dashboard.alertview import AlertView
from hookwatch.dashboard.failures import FailureGroup
from hookwatch.dashboard.intake import IntakeView
from hookwatch.dashboard.readings import ScopeReading

SCOPE_KINDS = ("model", "deployment", "version")
# "unwatched": traffic, but no rule covers the scope, so "ok" would be a claim nobody checks.
STATUSES = ("firing", "pending", "silenced", "ok", "unwatched", "no data")
STATUS_RANK = {status: i for i, status in enumerate(STATUSES)}
QUIET = ("ok", "unwatched", "no data")
"""Statuses the "problems" filter leaves out."""


class Watch:
    """Which scopes the rules watch: a rule of that scope kind whose `match` glob takes the
    name (alerts.evaluate's own test, fnmatchcase). Built once per app: rules never change."""

    def __init__(self, rules: Sequence[Rule] | None = None) -> None:
        # None: everything is watched (a picture built without rules, e.g. in a benchmark).
        self._all = rules is None
        self._kinds: dict[str, list[re.Pattern[str] | None]] = {}
        for rule in rules or ():
            glob = None if rule.match == "*" else re.compile(fnmatch.translate(rule.match))
            self._kinds.setdefault(rule.scope, []).append(glob)

    def watched(self, scope: str, name: str) -> bool:
        if self._all:
            return True
        return any(g is None or g.match(name) for g in self._kinds.get(scope, ()))

    def why_not(self, scope: str) -> str:
        """The status's title for an unwatched scope."""
        if scope not in self._kinds:
            return f"no rule watches {scope}s"
        return f"no rule's match covers this {scope}"


@dataclass(slots=True)
class ScopeRow:
    reading: ScopeReading
    status: str
    note: str = ""  # why the status is what it is, for its title (unwatched)


def scope_status(reading: ScopeReading | None, alert_status: str | None, *,
                 watched: bool = True) -> str:
    """An open alert decides; otherwise no data without a finished prediction in the last
    hour, unwatched when no rule covers the scope, else ok (the rule of
    alerts.queries.scope_statuses, so page, API and badge agree)."""
    if alert_status is not None:
        return alert_status
    if reading is None or reading.window("1h").total == 0:
        return "no data"
    return "ok" if watched else "unwatched"


SORTS: dict[str, Any] = {
    "status": lambda r: (STATUS_RANK[r.status], -(r.reading.window("1h").error_rate or -1.0)),
    "name": lambda r: r.reading.name.lower(),
    "rate5m": lambda r: -(r.reading.window("5m").error_rate or -1.0),
    "rate1h": lambda r: -(r.reading.window("1h").error_rate or -1.0),
    "rate24h": lambda r: -(r.reading.window("24h").error_rate or -1.0),
    "volume": lambda r: -r.reading.window("24h").total,
    "predict": lambda r: -(r.reading.latency[1] or -1.0),
    "queue": lambda r: -(r.reading.latency[3] or -1.0),
}
"""Each key sorts worst (or biggest) first; `desc=False` reverses."""


@dataclass(frozen=True, slots=True)
class View:
    """The viewer's filter and sort, from query parameters; invalid values fall back."""

    q: str = ""
    kind: str = ""
    status: str = ""
    sort: str = "status"
    reverse: bool = False
    glob: str = ""  # a shell-style pattern on the whole name (`acme/*`), case-sensitive
    offset: int = 0  # rows of the order skipped: the page starts here

    @classmethod
    def of(cls, params: dict[str, str]) -> View:
        kind = params.get("kind", "")
        status = params.get("status", "")
        sort = params.get("sort", "status")
        return cls(
            q=params.get("q", "").strip()[:200],
            kind=kind if kind in SCOPE_KINDS else "",
            status=status if status in (*STATUSES, "problems") else "",
            sort=sort if sort in SORTS else "status",
            reverse=params.get("dir") == "asc" if sort != "name" else params.get("dir") == "desc",
            glob=params.get("name", "")[:400],
            offset=_offset(params.get("offset", "")),
        )

    @property
    def filters(self) -> bool:
        return bool(self.q or self.kind or self.status or self.glob)

    @property
    def unpaged(self) -> View:
        return replace(self, offset=0)

    def keep(self, row: ScopeRow) -> bool:
        if self.kind and row.reading.scope != self.kind:
            return False
        if self.status == "problems" and row.status in QUIET:
            return False
        if self.status and self.status != "problems" and row.status != self.status:
            return False
        if self.glob and not fnmatchcase(row.reading.name, self.glob):
            return False
        return not self.q or self.q.lower() in row.reading.name.lower()

    def params(self, **changes: str) -> dict[str, str]:
        """The view as query parameters; a change of filter or sort passes `offset=""`."""
        values = {"q": self.q, "kind": self.kind, "status": self.status, "sort": self.sort,
                  "name": self.glob, "offset": str(self.offset) if self.offset else ""}
        if self.reverse:
            values["dir"] = "desc" if self.sort == "name" else "asc"
        values.update(changes)
        return {k: v for k, v in values.items() if v}


def _offset(value: str) -> int:
    try:
        return min(max(0, int(value)), 10**9)
    except ValueError:
        return 0


@dataclass(slots=True)
class Picture:
    now: float
    rows: list[ScopeRow]
    alerts: list[AlertView]
    failures: list[FailureGroup]
    total_scopes: int = 0
    groups: dict[str, list[ScopeRow]] = field(default_factory=dict)
    intake: IntakeView | None = None  # refused webhooks (dashboard.intake), set by its caller
    prices_as_of: str = ""  # the date of the price table behind every spend figure
    matched: int = 0  # scopes the view's filter keeps, on every page
    offset: int = 0  # where `rows` start in the view's order
    next_offset: int | None = None  # the next page's start, None on the last
    prev_offset: int | None = None
    rows_at: float = 0.0  # the instant the rows' figures are of (a slow build lags `now`)

    @property
    def firing(self) -> list[AlertView]:
        return [a for a in self.alerts if a.state == "firing"]

    @property
    def loud(self) -> list[AlertView]:
        """Firing, not silenced, not acknowledged: what needs a person now."""
        return [a for a in self.firing if not a.silenced and not a.acked_by]

    @property
    def pending(self) -> list[AlertView]:
        return [a for a in self.alerts if a.state == "pending"]
