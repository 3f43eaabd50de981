"""The API docs page (/docs): Swagger UI from hookwatch's own static files, never a CDN.

FastAPI's default page loads Swagger UI from cdn.jsdelivr.net and starts it with an inline
script, so it is blank offline and breaks under the dashboard's Content-Security-Policy.
"""

from __future__ import annotations

from html import escape

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse

from hookwatch.dashboard.render import HTML_HEADERS

router = APIRouter(include_in_schema=False)

_PAGE = """<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<title>hookwatch API</title>
<link rel="icon" href="/static/favicon.svg">
<link rel="stylesheet" href="/static/swagger/swagger-ui.css">
</head>
<body data-openapi="{openapi}">
<div id="swagger-ui"></div>
<script src="/static/swagger/swagger-ui-bundle.js"></script>
<script src="/static/swagger/init.js"></script>
</body>
</html>
"""


@router.get("/docs")
def api_docs(request: Request) -> HTMLResponse:
    openapi = escape(str(request.app.openapi_url or "/openapi.json"))
    return HTMLResponse(_PAGE.format(openapi=openapi), headers=HTML_HEADERS)
