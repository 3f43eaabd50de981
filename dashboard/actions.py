"""Acknowledge and silence from the page: HTML forms answered with the refreshed parts.

The decisions are alerts.actions' own (`acknowledge`, `create_silence`), which the JSON API
calls too: the same lock, checks and notifications; this module only turns form fields into
their arguments and a refusal into a message on the page. Without htmx (no JS) a form post
is answered 303 to /. Where a change comes from (Origin, Referer, Sec-Fetch-Site) and its
CSRF token are the access guard's checks (dashboard/guard.py), made before these run.
"""

from __future__ import annotations

import glob
from typing import Annotated, Literal

from fastapi import APIRouter, Form, HTTPException, Request
from fastapi.responses import HTMLResponse, JSONResponse, RedirectResponse, Response
from pydantic import BaseModel, Field
from sqlmodel import Session

from hookwatch.alerts.actions import ActionRefused, acknowledge, create_silence
from hookwatch.alerts.queries import get_alert
from hookwatch.dashboard.alert_page import alert_html
from hookwatch.dashboard.context import Dashboard, DashboardDep, live_html
from hookwatch.dashboard.picture import View
from hookwatch.dashboard.render import HTML_HEADERS, render

router = APIRouter(include_in_schema=False)


class ViewFields(BaseModel):
    """The page's filter and sort, sent along (hx-include="#controls") to redraw it as it was."""

    q: str = Field(default="", max_length=200)
    kind: str = Field(default="", max_length=20)
    status: str = Field(default="", max_length=20)
    sort: str = Field(default="", max_length=20)
    dir: str = Field(default="", max_length=4)
    page: Literal["", "alert"] = ""  # "alert": posted from the alert page, answered there
    offset: str = Field(default="", max_length=12)  # the page of scopes shown
    name: str = Field(default="", max_length=400)  # a name pattern (dashboard/listing.py)


def _answer(request: Request, board: Dashboard, view: ViewFields, message: str, ok: bool,
            status: int = 200, *, alert_id: int) -> Response:
    if view.page == "alert":  # a plain form of /alerts/{id}: back to it, or it with the refusal
        if ok:
            return RedirectResponse(f"/alerts/{alert_id}", status_code=303)
        html = alert_html(board, alert_id, flash=message, ok=False)
        if html is not None:
            return HTMLResponse(html, status_code=status, headers=HTML_HEADERS)
    if request.headers.get("hx-request") != "true":
        if ok:
            return RedirectResponse("/", status_code=303)
        return JSONResponse({"error": "refused", "detail": message}, status_code=status)
    flash = render("_flash.html", message=message, ok=ok, oob=True)
    live = live_html(board, View.of(view.model_dump()))
    return HTMLResponse(flash + live, headers=HTML_HEADERS)


class AckForm(ViewFields):
    by: str = Field(min_length=1, max_length=200)
    comment: str = Field(default="", max_length=2000)


class SilenceForm(ViewFields):
    by: str = Field(min_length=1, max_length=200)
    comment: str = Field(min_length=1, max_length=2000)
    duration: Literal["1h", "4h", "24h", "7d"] = "1h"


@router.post("/alerts/{alert_id}/ack")
def ack_form(
    alert_id: int, request: Request, board: DashboardDep, form: Annotated[AckForm, Form()]
) -> Response:
    by, comment = form.by, form.comment
    try:
        with Session(board.engine) as session:
            acknowledge(session, board.alerts, alert_id=alert_id, by=by.strip() or "?",
                        comment=comment.strip())
    except ActionRefused as exc:
        return _answer(request, board, form, exc.detail, False, exc.status, alert_id=alert_id)
    return _answer(request, board, form, f"Alert {alert_id} acknowledged by {by}.", True,
                   alert_id=alert_id)


@router.post("/alerts/{alert_id}/silence")
def silence_form(
    alert_id: int, request: Request, board: DashboardDep, form: Annotated[SilenceForm, Form()]
) -> Response:
    """Silences this alert's rule on this scope name for a while, with the reason given."""
    by, comment, duration = form.by, form.comment, form.duration
    with Session(board.engine) as session:
        alert = get_alert(session, alert_id=alert_id)
        if alert is None:
            raise HTTPException(404, f"there is no alert {alert_id}")
        rule, name = alert.rule, alert.name
        try:
            # Silence matchers are globs: escape the name so it matches itself only.
            create_silence(session, board.alerts, rule=glob.escape(rule), scope=alert.scope,
                           name=glob.escape(name), duration=duration,
                           created_by=by.strip() or "?", comment=comment.strip() or "?")
        except ActionRefused as exc:
            return _answer(request, board, form, exc.detail, False, exc.status,
                           alert_id=alert_id)
    return _answer(request, board, form, f"Silenced {rule} on {name} for {duration}.", True,
                   alert_id=alert_id)
