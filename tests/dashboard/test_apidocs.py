"""/docs in a real Chromium with every request off this machine refused: it still renders."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any
from urllib.parse import urlsplit

import pytest
from fastapi import FastAPI

from tests.conftest import LiveServer

pytestmark = pytest.mark.browser


def test_api_docs_render_offline_under_the_pages_csp(
    dash_app: Callable[..., FastAPI], chromium: Any
) -> None:
    with LiveServer(dash_app()) as server:
        context = chromium.new_context()
        page = context.new_page()
        foreign: list[str] = []
        errors: list[str] = []

        def route(r: Any) -> None:
            if urlsplit(r.request.url).hostname == "127.0.0.1":
                r.continue_()
            else:  # as it is offline: a CDN script would never arrive
                foreign.append(r.request.url)
                r.abort()

        page.route("**/*", route)
        page.on("console", lambda m: m.type == "error" and errors.append(m.text))
        response = page.goto(f"{server.url}/docs")
        assert response is not None and response.status == 200
        assert "script-src 'self'" in response.headers["content-security-policy"]
        page.wait_for_selector(".opblock", timeout=15_000)
        # Swagger UI breaks long paths with zero-width spaces.
        paths = [t.replace("\u200b", "") for t in
                 page.locator(".opblock-summary-path").all_inner_texts()]
        assert "/api/alerts" in paths and "/api/predictions" in paths and "/readyz" in paths
        context.close()
    assert foreign == []
    assert errors == []
