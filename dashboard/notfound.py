"""A missing thing of the dashboard's (a prediction, an alert): an HTML 404 page for a browser,
the contract's JSON 404 for everything else."""

from __future__ import annotations

from fastapi import HTTPException, Request
from fastapi.responses import HTMLResponse

from hookwatch.dashboard.render import HTML_HEADERS, render


def wants_html(request: Request) -> bool:
    """A browser navigating (Accept names text/html), not htmx or a script."""
    return "text/html" in request.headers.get("accept", "") and (
        request.headers.get("hx-request") != "true")


def not_found(request: Request, what: str, detail: str) -> HTMLResponse:
    """The HTML page, or raises the JSON 404 ({"error": "not_found", "detail": ...})."""
    if not wants_html(request):
        raise HTTPException(404, detail)
    html = render("not_found.html", what=what, detail=detail, oob=False)
    return HTMLResponse(html, status_code=404, headers=HTML_HEADERS)
