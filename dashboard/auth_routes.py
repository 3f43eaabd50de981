"""POST /auth: the sign-in form of private mode (the token in a body, not in a URL)."""

from __future__ import annotations

from fastapi import APIRouter, Form, HTTPException, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from hookwatch.dashboard.auth import safe_next
from hookwatch.dashboard.context import DashboardDep
from hookwatch.dashboard.render import HTML_HEADERS, render

router = APIRouter(include_in_schema=False)


@router.post("/auth")
def sign_in(
    request: Request,
    board: DashboardDep,
    token: str = Form(default="", max_length=1000),
    next: str = Form(default="/", max_length=2000),
) -> Response:
    gate = board.gate
    if gate is None:
        raise HTTPException(404, "the dashboard is open: there is nothing to sign in to")
    target = safe_next(next)
    if not gate.token_ok(token):
        html = render("unauthorized.html", path=target, detail="That token is not the one "
                      "this hookwatch was started with.", oob=False)
        return HTMLResponse(html, status_code=401, headers=HTML_HEADERS)
    response = RedirectResponse(target, status_code=303)
    secure = request.url.scheme == "https" or request.headers.get("x-forwarded-proto") == "https"
    response.headers.append("set-cookie", gate.set_cookie(secure=secure))
    return response
