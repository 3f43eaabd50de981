"""Recent failures grouped by error fingerprint: how many, when, which models, one example.

Read from the predictions table through its (status, counted_at) index, never raw events; the
grouping is reused while no failure has arrived or left the window since the last read.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass

from sqlalchemy import Connection, text


@dataclass(slots=True)
class FailureGroup:
    """Failures sharing an error fingerprint: how many, when, which models, one example."""

    fingerprint: str
    count: int
    first_seen: float
    last_seen: float
    models: list[str]
    example_id: str
    example_error: str


FAILURE_WINDOW = 86400


def recent_failures(
    conn: Connection, *, now: float, window: int = FAILURE_WINDOW, limit: int = 20
) -> list[FailureGroup]:
    """Failed predictions counted in the window, grouped by fingerprint, most frequent first."""
    groups: dict[str, FailureGroup] = {}
    for fp, model, count, first, last in conn.execute(
        text(
            "SELECT fingerprint, model, COUNT(*), MIN(counted_at), MAX(counted_at) "
            "FROM predictions WHERE status = 'failed' AND counted_at >= :since "
            "GROUP BY fingerprint, model"
        ),
        {"since": now - window},
    ):
        key = fp or ""
        group = groups.get(key)
        if group is None:
            group = groups[key] = FailureGroup(key, 0, first, last, [], "", "")
        group.count += int(count)
        group.first_seen = min(group.first_seen, first)
        group.last_seen = max(group.last_seen, last)
        if model:
            group.models.append(model)
    top = sorted(groups.values(), key=lambda g: (-g.count, -g.last_seen))[:limit]
    if top:
        # The latest example of each group: the failures counted at its last-seen instant.
        lasts = {f"t{n}": g.last_seen for n, g in enumerate(top)}
        by_fp = {g.fingerprint: g for g in top}
        for pid, fp, error, at in conn.execute(
            text(
                "SELECT id, fingerprint, error, counted_at FROM predictions "
                "WHERE status = 'failed' AND "
                f"counted_at IN ({', '.join(':' + k for k in lasts)}) ORDER BY id"
            ),
            lasts,
        ):
            group = by_fp.get(fp or "")
            if group is not None and not group.example_id and at == group.last_seen:
                group.example_id, group.example_error = pid, error or ""
    for group in top:
        group.models.sort()
    return top


class RecentFailures:
    """`recent_failures`, reused while the window holds the same failures: a refresh first
    asks the index for their count and latest time, a read of the index alone."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.key: tuple[int, float | None] | None = None
        self.groups: list[FailureGroup] = []

    def read(self, conn: Connection, *, now: float) -> list[FailureGroup]:
        count, last = conn.execute(
            text("SELECT COUNT(*), MAX(counted_at) FROM predictions "
                 "WHERE status = 'failed' AND counted_at >= :since"),
            {"since": now - FAILURE_WINDOW},
        ).one()
        key = (int(count), last)
        with self.lock:
            if key == self.key:
                return self.groups
        groups = recent_failures(conn, now=now)
        with self.lock:
            self.key, self.groups = key, groups
        return groups
