"""POST /auth: the sign-in form of private mode (the token in a body, not in a URL).

The guard has checked the form's site and CSRF token; this adds the rate limit on wrong tokens.
"""

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
    gate, limiter = board.gate, board.limiter
    if gate is None:
        raise HTTPException(404, "the dashboard is open: there is nothing to sign in to")
    target = safe_next(next)
    client = request.client.host if request.client else "unknown"
    now = board.clock()
    wait = limiter.retry_after(client, now=now)
    if wait:
        html = render("unauthorized.html", path=target, detail="Too many wrong tokens from "
                      f"your address: try again in {wait} s.", oob=False)
        return HTMLResponse(html, status_code=429,
                            headers={**HTML_HEADERS, "retry-after": str(wait)})
    role = gate.role_for_token(token, now=now)
    if role is None:
        limiter.failed(client, now=now)
        html = render("unauthorized.html", path=target, detail="That token is not the one "
                      "this hookwatch was started with.", oob=False)
        return HTMLResponse(html, status_code=401, headers=HTML_HEADERS)
    response = RedirectResponse(target, status_code=303)
    secure = request.url.scheme == "https" or request.headers.get("x-forwarded-proto") == "https"
    response.headers.append("set-cookie", gate.set_cookie(role, secure=secure))
    return response
