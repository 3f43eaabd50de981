"""GET /api/status (the page's picture as JSON) and GET /badge/{scope}/{name}.svg."""

from __future__ import annotations

from typing import Annotated, Any, Literal

import orjson
from fastapi import APIRouter, HTTPException, Query, Request
from fastapi.responses import Response
from sqlmodel import Session

from hookwatch.dashboard.alertview import AlertView, alert_views, scope_statuses
from hookwatch.dashboard.api import iso
from hookwatch.dashboard.context import DashboardDep, picture_for
from hookwatch.dashboard.intake import refused_json
from hookwatch.dashboard.picture import SCOPE_KINDS, SORTS, STATUSES, View, scope_status
from hookwatch.dashboard.readings import WINDOWS, ScopeReading
from hookwatch.dashboard.render import pct
from hookwatch.dashboard.svg import badge
from hookwatch.dashboard.usage import spend
from hookwatch.storage.rates import Counts, window_counts

router = APIRouter()


def scope_json(reading: ScopeReading, status: str) -> dict[str, Any]:
    p50, p95, q50, q95 = reading.latency
    return {
        "scope": reading.scope,
        "name": reading.name,
        "status": status,
        "windows": {w: _counts_json(reading.window(w)) for w in WINDOWS},
        "predict_time": {"p50": p50, "p95": p95},
        "queue_time": {"p50": q50, "p95": q95},
        "queue_p95": q95,
        "predict_p95": p95,
        "spend_1h": spend(reading.usage, reading.price, "1h"),
        "spend_24h": spend(reading.usage, reading.price, "24h"),
    }


def _counts_json(counts: Counts) -> dict[str, int | float | None]:
    return {**counts.as_dict(), "total": counts.total, "error_rate": counts.error_rate}


def alert_json(alert: AlertView) -> dict[str, Any]:
    return {
        "id": alert.id, "key": alert.key, "rule": alert.rule, "kind": alert.rule_kind,
        "severity": alert.severity, "scope": alert.scope, "name": alert.name,
        "state": alert.state, "since": iso(alert.since), "fired_at": iso(alert.fired_at),
        "value": alert.value, "threshold": alert.threshold, "summary": alert.summary,
        "muted_by": alert.muted_by, "acknowledged_by": alert.acked_by,
        "acknowledged_at": iso(alert.acked_at),
        "deliveries": [
            {"notifier": d.notifier, "kind": d.kind, "state": d.state, "attempts": d.attempts,
             "error": d.error}
            for d in alert.deliveries
        ],
    }


API_LIMIT = 1000
"""Scopes in one answer unless `limit` says otherwise; `next_offset` fetches the rest."""
API_MAX_LIMIT = 5000
_NAMES = "^(" + "|".join(SCOPE_KINDS) + ")$"
_STATUSES = "^(" + "|".join((*STATUSES, "problems")) + ")$"
_SORTS = "^(" + "|".join(SORTS) + ")$"


@router.get("/api/status", tags=["status"], include_in_schema=True)
def api_status(
    request: Request,
    board: DashboardDep,
    scope: Annotated[str | None, Query(pattern=_NAMES, description="model, deployment or "
                                       "version")] = None,
    kind: Annotated[str | None, Query(pattern=_NAMES, description="the same as scope")] = None,
    q: Annotated[str, Query(max_length=200, description="a substring of the name, any case")
                 ] = "",
    name: Annotated[str, Query(max_length=400, description="a shell pattern on the whole "
                               "name, case-sensitive: acme/* (a prefix), acme/sdxl (one)")] = "",
    status: Annotated[str | None, Query(pattern=_STATUSES, description="firing, pending, "
                                        "silenced, ok, unwatched, no data, or problems")] = None,
    sort: Annotated[str, Query(pattern=_SORTS)] = "status",
    dir: Annotated[Literal["asc", "desc"] | None, Query()] = None,
    limit: Annotated[int, Query(ge=1, le=API_MAX_LIMIT)] = API_LIMIT,
    offset: Annotated[int, Query(ge=0, le=10**9)] = 0,
) -> Response:
    """Per scope (model, deployment, version): counts and error rates over 5m, 1h and 24h,
    latency percentiles over the last hour, status; the open alerts, worst first; and the
    webhooks this process refused, by reason, over 5 minutes and the hour (`refused`).

    Scopes come worst first (firing, pending, silenced, then by 1 h error rate), `limit` at a
    time (default 1000, at most 5000) from `offset`; `matched` says how many the filters kept,
    `next_offset` where the next page starts (null on the last). Filters: `scope` (or `kind`),
    `q` (substring of the name), `name` (a pattern), `status`."""
    del request
    params = {"kind": scope or kind or "", "q": q, "name": name, "status": status or "",
              "sort": sort, "dir": dir or "", "offset": str(offset)}
    view = View.of(params)
    picture = picture_for(board, view, with_failures=False, limit=limit)
    body = {
        "now": iso(picture.now),
        "status": "firing" if picture.loud else ("pending" if picture.alerts else "ok"),
        "firing": len(picture.firing),
        "prices_as_of": picture.prices_as_of,
        "scopes_at": iso(picture.rows_at),  # the figures' instant: a few seconds behind `now`
        # at tens of thousands of scopes (dashboard/listing.py)
        "total_scopes": picture.total_scopes,
        "matched": picture.matched,
        "offset": picture.offset,
        "limit": limit,
        "next_offset": picture.next_offset,
        "scopes": [scope_json(row.reading, row.status) for row in picture.rows],
        "alerts": [alert_json(a) for a in picture.alerts],
        "refused": refused_json(board.refusals, picture.now),
    }
    return Response(orjson.dumps(body), media_type="application/json",
                    headers={"cache-control": "no-store"})


@router.get("/badge/{scope}/{name:path}.svg", tags=["status"], include_in_schema=True)
def status_badge(scope: str, name: str, board: DashboardDep) -> Response:
    """A shields-style badge: the scope's 1 h error rate, coloured by its status."""
    if scope not in SCOPE_KINDS:
        raise HTTPException(404, f"unknown scope {scope!r}: use model, deployment or version")
    if not name or len(name) > 400:
        raise HTTPException(404, "the badge needs a scope name of 1 to 400 characters")
    now = board.clock()
    with Session(board.engine) as session:
        hour = window_counts(session, now=now, window_seconds=3600, scope=scope, names=[name])
        views = alert_views(session, now=now, scope=scope, name=name, with_deliveries=False)
    counts = hour.get((scope, name))
    reading = ScopeReading(scope, name)
    if counts is not None:
        reading.windows["1h"] = counts
    status = scope_status(reading, scope_statuses(views).get((scope, name)),
                          watched=board.watch.watched(scope, name))
    rate = counts.error_rate if counts is not None else None
    message = "no data" if rate is None else f"{pct(rate)} errors"
    svg = badge(name, message, status)
    return Response(
        svg,
        media_type="image/svg+xml",
        # Badges are fetched through caches (GitHub's camo); ask them not to keep one.
        headers={"cache-control": "no-cache, max-age=0", "x-content-type-options": "nosniff"},
    )
