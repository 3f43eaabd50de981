"""The status page, its htmx parts, and the prediction page (server-rendered, Jinja2)."""

from __future__ import annotations

import json

from fastapi import APIRouter, Query, Request
from fastapi.responses import HTMLResponse
from sqlmodel import Session

from hookwatch.dashboard import changes
from hookwatch.dashboard.api import queue_time
from hookwatch.dashboard.context import (
    DashboardDep,
    failing_notifiers,
    live_parts,
    page_context,
    picture_for,
)
from hookwatch.dashboard.notfound import not_found
from hookwatch.dashboard.picture import View
from hookwatch.dashboard.prediction_logs import shown_logs
from hookwatch.dashboard.render import HTML_HEADERS, render
from hookwatch.dashboard.svg import gaps_defs
from hookwatch.storage.queries import get_prediction, prediction_events

router = APIRouter(include_in_schema=False)

DEFAULT_REFRESH = 10


@router.get("/", response_class=HTMLResponse)
def index(
    request: Request,
    board: DashboardDep,
    refresh: float = Query(default=DEFAULT_REFRESH, ge=0.2, le=3600),
) -> HTMLResponse:
    view = View.of(dict(request.query_params))
    picture = picture_for(board, view)
    html = render("index.html", **page_context(picture, view, refresh=f"{refresh:g}",
                                               gaps=gaps_defs(),
                                               failing_notifiers=failing_notifiers(board)))
    return HTMLResponse(html, headers=HTML_HEADERS)


@router.get("/parts/live", response_class=HTMLResponse)
def part_live(request: Request, board: DashboardDep) -> HTMLResponse:
    """The refreshable parts, less those the page already holds (dashboard/changes.py)."""
    parts = live_parts(board, View.of(dict(request.query_params)))
    html, tags = changes.changed(parts, request.headers.get(changes.HEADER, ""))
    return HTMLResponse(html, headers={**HTML_HEADERS, changes.HEADER: tags})


@router.get("/parts/scopes", response_class=HTMLResponse)
def part_scopes(request: Request, board: DashboardDep) -> HTMLResponse:
    view = View.of(dict(request.query_params))
    picture = picture_for(board, view, with_failures=False)
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
def prediction_page(prediction_id: str, request: Request, board: DashboardDep) -> HTMLResponse:
    with Session(board.engine) as session:
        row = get_prediction(session, prediction_id=prediction_id)
        if row is None:  # a browser gets a page, a script the JSON 404
            return not_found(request, "prediction",
                             f"no prediction with id {prediction_id!r} has been recorded")
        events = prediction_events(session, prediction=row)
    logs, truncated = log_tail(shown_logs(events, row.logs))
    show = board.show_payloads
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
