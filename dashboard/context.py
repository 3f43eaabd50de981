"""The dashboard's typed object (built by create_app) and the page parts every route draws:
the picture, the template context, the live parts. pages, actions and status_api build on it,
so none of them imports another."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Annotated, Any

from fastapi import Depends
from prometheus_client import CollectorRegistry
from sqlalchemy import Engine
from sqlmodel import Session

from hookwatch.alerts.actions import AlertContext
from hookwatch.alerts.pricing import Pricing
from hookwatch.dashboard.alertview import alert_views
from hookwatch.dashboard.auth import Gate
from hookwatch.dashboard.failures import RecentFailures
from hookwatch.dashboard.intake import intake_view
from hookwatch.dashboard.listing import PAGE_ROWS, Listing, page_groups
from hookwatch.dashboard.picture import SCOPE_KINDS, STATUSES, Picture, View, Watch
from hookwatch.dashboard.policy import Access
from hookwatch.dashboard.ratelimit import SignInLimiter
from hookwatch.dashboard.readings import Readings
from hookwatch.dashboard.render import render
from hookwatch.dashboard.rows import row_groups
from hookwatch.hooks.refusals import Refusals
from hookwatch.notifiers.health import failing
from hookwatch.storage.health import CommitHealth

SORT_LABELS = {
    "status": "status", "name": "name", "rate5m": "5m error rate", "rate1h": "1h error rate",
    "rate24h": "24h error rate", "volume": "volume", "predict": "predict p95",
    "queue": "queue p95",
}


@dataclass
class Dashboard:
    """What the pages need: the engine and clock, the alert actions, the metrics registry, the
    readiness checks of the rest of the service, private mode's gate, and the caches."""

    engine: Engine
    clock: Callable[[], float]
    alerts: AlertContext
    registry: CollectorRegistry
    readiness: Callable[[], dict[str, Any]] = dict  # extra /readyz checks (leadership, writer)
    commits: CommitHealth = field(default_factory=CommitHealth)  # required by /readyz
    show_payloads: bool = False
    gate: Gate | None = None  # private mode: a dashboard token, configured or made
    access: Access = field(default_factory=Access)  # open, when built without one
    limiter: SignInLimiter = field(default_factory=SignInLimiter)
    readings: Readings = field(default_factory=Readings)
    failures: RecentFailures = field(default_factory=RecentFailures)
    refusals: Refusals = field(default_factory=Refusals)  # the receiver's, counted per minute
    notifiers: tuple[str, ...] = ()  # the configured notifiers, whose health the page shows
    listing: Listing = field(default_factory=Listing)  # create_app touches it on each commit
    watch: Watch = field(init=False)  # which scopes the rules cover, from alerts.rules

    def __post_init__(self) -> None:
        self.watch = Watch(self.alerts.rules)
    pricing: Pricing = field(default_factory=Pricing)  # for the spend figures


def get_dashboard() -> Dashboard:
    """A placeholder that create_app binds to the app's Dashboard."""
    raise LookupError("no dashboard: this app was not built by hookwatch.app.create_app")


DashboardDep = Annotated[Dashboard, Depends(get_dashboard)]


def picture_for(board: Dashboard, view: View, *, with_failures: bool = True,
                limit: int = PAGE_ROWS) -> Picture:
    """One page of the view (at most `limit` rows) from the listing's shared summary, the open
    alerts, and (for the page) the recent failure groups."""
    now = board.clock()
    with board.engine.connect() as conn:
        with Session(bind=conn) as session:
            alerts = alert_views(session, now=now)
        found = board.failures.read(conn, now=now) if with_failures else []
    summary = board.listing.summary(board.engine, readings=board.readings, now=now,
                                    alerts=alerts, watch=board.watch,
                                    pricing=board.pricing)
    page = summary.page(view, limit=limit)
    return Picture(
        now, page.rows, alerts, found, summary.total, page_groups(page, view),
        matched=page.matched, offset=page.offset, next_offset=page.next_offset,
        prev_offset=page.prev_offset, rows_at=summary.now,
        intake=intake_view(board.refusals, now), prices_as_of=board.pricing.as_of,
    )


def failing_notifiers(board: Dashboard) -> list[tuple[str, str]]:
    """(name, why) of each configured notifier that keeps failing (notifiers.health)."""
    if not board.notifiers:
        return []
    found = failing(board.engine, list(board.notifiers), now=board.clock())
    return [(name, found[name].reason()) for name in sorted(found)]


def page_context(picture: Picture, view: View, **extra: Any) -> dict[str, Any]:
    return {
        "picture": picture, "groups": row_groups(picture), "view": view, "kinds": SCOPE_KINDS,
        "statuses": STATUSES, "sorts": SORT_LABELS, "oob": False, "failing_notifiers": [],
        **extra,
    }


LIVE_PARTS = (("updated", "_updated.html"), ("headline", "_headline.html"),
              ("notifiers", "_notifiers.html"), ("alerts", "_alerts.html"),
              ("scope-table", "_scopes.html"), ("failures", "_failures.html"))
"""The page's refreshable parts: element id and template, each swapped in by id."""


def live_parts(board: Dashboard, view: View) -> list[tuple[str, str]]:
    """Every refreshable part, rendered for an out-of-band swap (hx-swap-oob), by its id."""
    context = page_context(picture_for(board, view), view, oob=True,
                           failing_notifiers=failing_notifiers(board))
    return [(part, render(name, **context)) for part, name in LIVE_PARTS]


def live_html(board: Dashboard, view: View) -> str:
    """Every refreshable part, each swapped into the page by its id (hx-swap-oob)."""
    return "".join(html for _, html in live_parts(board, view))
