"""The scope listing: every scope's row built once per change, shared by every viewer, and each
view's order, filter and page cut from it.

At 40,000 scopes a request that read the open buckets, built every row and sorted them cost
seconds (issue 20). Here the rows are built once per `Key` (the commits this replica has
counted, the minute, the open alerts' statuses) and shared by every request; each sort order
is computed once per summary, and a page is a slice of it. Another replica's commits show
within `max_age` seconds. When a build is slow it runs off the request path (`Listing`).
"""

from __future__ import annotations

import gc
import logging
import threading
import time
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass

from sqlalchemy import Engine

from hookwatch.alerts.pricing import Pricing
from hookwatch.dashboard.alertview import AlertView, scope_statuses
from hookwatch.dashboard.picture import SCOPE_KINDS, SORTS, ScopeRow, View, Watch, scope_status
from hookwatch.dashboard.readings import Readings, ScopeReading
from hookwatch.storage.window_cache import GRACE

PAGE_ROWS = 100
"""Rows on one page of the dashboard, whatever the number of scopes."""
MAX_AGE = 10.0
"""Seconds a summary is kept without a local commit: another replica's commits show by then."""
ATTENTION = ("firing", "pending", "silenced")
log = logging.getLogger(__name__)
SLOW_BUILD = 0.15
"""Seconds: a build slower than this runs on a thread while the last summary is served."""
MANY = 5000
"""Scopes under which every build is done in the request, however long it took."""
PAUSE = 9.0
"""After a background build, none starts for this many times its cost (builds busy 1/10)."""
MAX_STALE = 60.0
"""Seconds: an older summary is never served; the request builds a new one."""
_FILTERED_KEPT = 32  # filtered orders kept per summary (a few viewers, a few filters each)


@dataclass(frozen=True, slots=True)
class Page:
    """One page of a view: its rows, how many scopes matched the filter, and where it starts."""

    rows: list[ScopeRow]
    matched: int
    total: int
    offset: int
    limit: int

    @property
    def next_offset(self) -> int | None:
        end = self.offset + len(self.rows)
        return end if end < self.matched else None

    @property
    def prev_offset(self) -> int | None:
        return max(0, self.offset - self.limit) if self.offset else None

    @property
    def remaining(self) -> int:
        return max(0, self.matched - self.offset - len(self.rows))


Key = tuple[int, int, int, frozenset[tuple[tuple[str, str], str]]]


class Summary:
    """Every scope's row at one instant, and its orders, computed on first use and kept."""

    def __init__(self, now: float, key: Key, rows: list[ScopeRow]) -> None:
        self.now = now
        self.key = key
        self.rows = rows
        self._lock = threading.Lock()
        self._orders: dict[tuple[str, bool], list[ScopeRow]] = {}
        self._filtered: OrderedDict[View, list[ScopeRow]] = OrderedDict()

    @property
    def total(self) -> int:
        return len(self.rows)

    def ordered(self, sort: str, reverse: bool) -> list[ScopeRow]:
        """All rows in this order; ties broken by name then scope kind, so pages are stable."""
        with self._lock:
            rows = self._orders.get((sort, reverse))
            if rows is None:
                rows = sorted(self.rows, key=lambda r: (r.reading.name.lower(), r.reading.name,
                                                        r.reading.scope))
                rows.sort(key=SORTS[sort], reverse=reverse)
                self._orders[(sort, reverse)] = rows
            return rows

    def matching(self, view: View) -> list[ScopeRow]:
        """The rows the view keeps, in its order (the unfiltered order when it keeps all)."""
        rows = self.ordered(view.sort, view.reverse)
        if not view.filters:
            return rows
        key = view.unpaged
        with self._lock:
            kept = self._filtered.get(key)
            if kept is not None:
                self._filtered.move_to_end(key)
                return kept
        kept = [r for r in rows if view.keep(r)]
        with self._lock:
            self._filtered[key] = kept
            while len(self._filtered) > _FILTERED_KEPT:
                self._filtered.popitem(last=False)
        return kept

    def page(self, view: View, *, limit: int = PAGE_ROWS) -> Page:
        rows = self.matching(view)
        offset = min(view.offset, max(0, len(rows) - 1)) if rows else 0
        return Page(rows[offset:offset + limit], len(rows), self.total, offset, limit)


def build_rows(readings: dict[tuple[str, str], ScopeReading], alerts: Sequence[AlertView],
               watch: Watch, pricing: Pricing) -> list[ScopeRow]:
    """A row per scope with outcomes or an open alert, its status decided (picture.py)."""
    statuses = scope_statuses(alerts)
    for key in statuses:
        if key not in readings:  # an alert on a scope without outcomes (stuck, no traffic)
            readings[key] = ScopeReading(key[0], key[1])
    for (scope, name), reading in readings.items():
        reading.price = pricing.price(scope, name)
    rows = [ScopeRow(reading, scope_status(reading, statuses.get(key),
                                           watched=watch.watched(key[0], key[1])))
            for key, reading in readings.items()]
    for row in rows:
        if row.status == "unwatched":
            row.note = watch.why_not(row.reading.scope)
    return rows


class Listing:
    """The shared summary: rebuilt when this replica counts a commit (`touch`), when a minute
    turns (the windows slide), when an open alert's status changes, or after `max_age`
    seconds. One per app; safe across request threads.

    A build that takes under `slow` seconds, or of under `many` scopes, is done in the request
    that finds the summary out of date, so the page is exact to the last commit. A slower one
    (40,000 scopes: seconds) runs on a thread while requests keep getting the summary they
    had, one build at a time and, after each, a pause of `pause` times its cost: the page
    lags by a few seconds, and the builds take a bounded share of the process's time
    whatever the number of viewers and the rate of webhooks. A summary older than `max_stale`
    seconds is not served: the request waits for a build."""

    def __init__(self, *, max_age: float = MAX_AGE, slow: float = SLOW_BUILD,
                 many: int = MANY, pause: float = PAUSE, max_stale: float = MAX_STALE) -> None:
        self.max_age = max_age
        self.slow = slow
        self.many = many
        self.pause = pause
        self.max_stale = max_stale
        self.commits = 0
        self.builds = 0  # summaries built, for tests and the benchmark
        self.cost = 0.0  # seconds the last build took
        self._build_lock = threading.Lock()
        self._summary: Summary | None = None
        self._background: threading.Thread | None = None
        self._next_background = 0.0  # time.monotonic() before which none starts

    def touch(self, *_: object) -> None:
        """Something was committed: the summary is out of date (a runtime counted listener)."""
        self.commits += 1

    def _key(self, now: float, alerts: Sequence[AlertView]) -> Key:
        # The windows' edges move once a minute, their closed part GRACE seconds after that.
        minute = int(now) // 60
        closed = (int(now) - GRACE) // 60
        statuses = frozenset(scope_statuses(alerts).items())
        return (self.commits, minute, closed, statuses)

    def _fresh(self, summary: Summary | None, key: Key, now: float) -> bool:
        return (summary is not None and summary.key == key
                and 0 <= now - summary.now < self.max_age)

    def summary(self, engine: Engine, *, readings: Readings, now: float,
                alerts: Sequence[AlertView], watch: Watch | None = None,
                pricing: Pricing | None = None) -> Summary:
        key = self._key(now, alerts)
        summary = self._summary
        if summary is not None and self._fresh(summary, key, now):
            return summary
        if (summary is not None and self.cost >= self.slow and summary.total >= self.many
                and 0 <= now - summary.now < self.max_stale):
            self._build_in_background(engine, readings, now, alerts, watch or Watch(),
                                      pricing or Pricing())
            return summary
        with self._build_lock:  # the other viewers wait for this build and share it
            summary = self._summary
            if summary is not None and self._fresh(summary, key, now):
                return summary
            return self._build(engine, readings, now, alerts, watch or Watch(),
                               pricing or Pricing())

    def _build(self, engine: Engine, readings: Readings, now: float,
               alerts: Sequence[AlertView], watch: Watch, pricing: Pricing) -> Summary:
        """Called under the build lock."""
        began = time.perf_counter()
        key = self._key(now, alerts)  # before the read: a commit counted during it rebuilds
        # A build makes some 300,000 objects at 40,000 scopes, none in a cycle: left on, the
        # cycle collector ran its full passes over the heap during it, each holding the GIL for
        # up to 0.8 s, and webhooks waited (bench_dashboard.py --serve). Refcounting frees them.
        collecting = gc.isenabled()
        gc.disable()
        try:
            with engine.connect() as conn:
                rows = build_rows(readings.read(conn, now=now), alerts, watch, pricing)
            summary = Summary(now, key, rows)
            summary.ordered("status", False)  # the default order, ready for every viewer
        finally:
            if collecting:
                gc.enable()
        self._summary = summary
        self.builds += 1
        self.cost = time.perf_counter() - began
        return summary

    def _build_in_background(self, engine: Engine, readings: Readings, now: float,
                             alerts: Sequence[AlertView], watch: Watch,
                             pricing: Pricing) -> None:
        if not self._build_lock.acquire(blocking=False):
            return  # a build is under way: its summary will do
        if time.monotonic() < self._next_background:
            self._build_lock.release()
            return

        def run() -> None:
            try:
                self._build(engine, readings, now, alerts, watch, pricing)
            except Exception:
                log.exception("building the dashboard's summary failed")
            finally:
                self._next_background = time.monotonic() + self.pause * self.cost
                self._build_lock.release()

        self._background = threading.Thread(target=run, name="dashboard-summary", daemon=True)
        self._background.start()

    def wait(self) -> None:
        """Until a background build under way has finished (tests, the benchmark)."""
        thread = self._background
        if thread is not None:
            thread.join()


def page_groups(page: Page, view: View) -> dict[str, list[ScopeRow]]:
    """The page's rows by kind (model, deployment, version), in the page's order; sorted by
    status, the scopes that need attention (firing, pending, silenced) come first on their own."""
    groups: dict[str, list[ScopeRow]] = {}
    if view.sort == "status" and not view.reverse:
        groups["attention"] = []
    for kind in SCOPE_KINDS:
        groups[kind] = []
    for row in page.rows:
        if "attention" in groups and row.status in ATTENTION:
            groups["attention"].append(row)
        else:
            groups.setdefault(row.reading.scope, []).append(row)
    return groups
