"""The status page, its htmx parts, and the prediction page (server-rendered, Jinja2)."""

from __future__ import annotations

import json
from typing import Any

from fastapi import APIRouter, HTTPException, Query, Request
from fastapi.responses import HTMLResponse
from sqlmodel import Session

from hookwatch.dashboard.actions import router as actions_router
from hookwatch.dashboard.api import queue_time
from hookwatch.dashboard.auth_routes import router as auth_router
from hookwatch.dashboard.failures import RecentFailures
from hookwatch.dashboard.metrics import router as metrics_router
from hookwatch.dashboard.picture import SCOPE_KINDS, STATUSES, Picture, View, build_picture
from hookwatch.dashboard.readings import Readings
from hookwatch.dashboard.render import HTML_HEADERS, render
from hookwatch.dashboard.rows import row_groups
from hookwatch.dashboard.status_api import router as status_router
from hookwatch.dashboard.svg import gaps_defs
from hookwatch.deps import RuntimeDep
from hookwatch.runtime import Runtime
from hookwatch.storage.queries import get_prediction, prediction_events

router = APIRouter(include_in_schema=False)
router.include_router(status_router)
router.include_router(metrics_router)
router.include_router(actions_router)
router.include_router(auth_router)

SORT_LABELS = {
    "status": "status", "name": "name", "rate5m": "5m error rate", "rate1h": "1h error rate",
    "rate24h": "24h error rate", "volume": "volume", "predict": "predict p95",
    "queue": "queue p95",
}
DEFAULT_REFRESH = 10


def readings_of(runtime: Runtime) -> Readings:
    """The app's Readings (over storage.window_cache's caches), made on first use."""
    readings = runtime.extras.setdefault("dashboard.readings", Readings())
    assert isinstance(readings, Readings)
    return readings


def failures_of(runtime: Runtime) -> RecentFailures:
    failures = runtime.extras.setdefault("dashboard.failures", RecentFailures())
    assert isinstance(failures, RecentFailures)
    return failures


def picture_for(runtime: Runtime, view: View, *, with_failures: bool = True) -> Picture:
    with runtime.engine.connect() as conn:
        return build_picture(
            conn, readings=readings_of(runtime), failures=failures_of(runtime),
            now=runtime.clock(), view=view, with_failures=with_failures,
        )


def page_context(picture: Picture, view: View, **extra: Any) -> dict[str, Any]:
    return {
        "picture": picture, "groups": row_groups(picture), "view": view, "kinds": SCOPE_KINDS,
        "statuses": STATUSES, "sorts": SORT_LABELS, "oob": False, **extra,
    }


def live_html(runtime: Runtime, view: View) -> str:
    """Every refreshable part, each swapped into the page by its id (hx-swap-oob)."""
    picture = picture_for(runtime, view)
    return render("live.html", **page_context(picture, view, oob=True))


@router.get("/", response_class=HTMLResponse)
def index(
    request: Request,
    runtime: RuntimeDep,
    refresh: float = Query(default=DEFAULT_REFRESH, ge=0.2, le=3600),
) -> HTMLResponse:
    view = View.of(dict(request.query_params))
    picture = picture_for(runtime, view)
    html = render("index.html", **page_context(picture, view, refresh=f"{refresh:g}",
                                               gaps=gaps_defs()))
    return HTMLResponse(html, headers=HTML_HEADERS)


@router.get("/parts/live", response_class=HTMLResponse)
def part_live(request: Request, runtime: RuntimeDep) -> HTMLResponse:
    html = live_html(runtime, View.of(dict(request.query_params)))
    return HTMLResponse(html, headers=HTML_HEADERS)


@router.get("/parts/scopes", response_class=HTMLResponse)
def part_scopes(request: Request, runtime: RuntimeDep) -> HTMLResponse:
    view = View.of(dict(request.query_params))
    picture = picture_for(runtime, view, with_failures=False)
    return HTMLResponse(render("_scopes.html", **page_context(picture, view)), headers=HTML_HEADERS)


LOG_LINES = 200
LOG_CHARS = 64 * 1024


def log_tail(logs: str | None) -> tuple[str, bool]:
    """The last LOG_LINES lines (at most LOG_CHARS characters), and whether any were cut."""
    if not logs:
        return "", False
    text = logs[-LOG_CHARS:]
    lines = text.splitlines()
    cut = len(text) < len(logs) or len(lines) > LOG_LINES
    return "\n".join(lines[-LOG_LINES:]), cut


def _payloads(bodies: list[bytes]) -> tuple[str | None, str | None]:
    """Input and output, pretty-printed, from the latest event that carries each."""
    found: dict[str, str | None] = {"input": None, "output": None}
    for body in reversed(bodies):
        try:
            data = json.loads(body)
        except ValueError:
            continue
        if not isinstance(data, dict):
            continue
        for key in found:
            if found[key] is None and data.get(key) is not None:
                found[key] = json.dumps(data[key], indent=2, ensure_ascii=False)
    return found["input"], found["output"]


def status_class(status: str) -> str:
    return {"succeeded": "ok", "failed": "firing", "starting": "pending",
            "processing": "pending"}.get(status, "silenced")


@router.get("/predictions/{prediction_id}", response_class=HTMLResponse)
def prediction_page(prediction_id: str, runtime: RuntimeDep) -> HTMLResponse:
    with Session(runtime.engine) as session:
        row = get_prediction(session, prediction_id=prediction_id)
        if row is None:
            raise HTTPException(404, f"no prediction with id {prediction_id!r} has been recorded")
        events = prediction_events(session, prediction_id=prediction_id)
    logs, truncated = log_tail(row.logs)
    show = runtime.settings.show_payloads
    given, made = _payloads([e.body for e in events]) if show else (None, None)
    timeline = [
        {"received_at": e.received_at, "sent_at": e.sent_at, "status": e.status,
         "status_class": status_class(e.status), "source": e.source}
        for e in events
    ]
    html = render(
        "prediction.html", p=row, events=timeline, logs=logs, log_truncated=truncated,
        log_lines=LOG_LINES, show_payloads=show, input=given, output=made,
        queue_time=queue_time(row), status_class=status_class(row.status), oob=False,
    )
    return HTMLResponse(html, headers=HTML_HEADERS)
