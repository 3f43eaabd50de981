"""Many scopes in a real Chromium (issue 20): "N more" pages in place, the search box goes to
the server and starts at the first page, and the live refresh sends a part only when it
changed, under the page's Content-Security-Policy."""

from __future__ import annotations

import re
import time
from collections.abc import Callable
from typing import Any

import pytest
from fastapi import FastAPI
from playwright.sync_api import expect

from tests.conftest import LiveServer, ManualClock
from tests.dashboard import helpers

pytestmark = pytest.mark.browser
MODELS = 130  # 260 scopes: three pages


def test_pages_search_and_a_refresh_that_sends_only_what_changed(
    dash_app: Callable[..., FastAPI], clock: ManualClock, page: Any
) -> None:
    app = dash_app()
    with LiveServer(app) as server:
        for i in range(MODELS):
            helpers.send(server.url, clock, helpers.body(
                "succeeded", at=clock.now, model=f"fleet/model-{i:03d}", deployment=None,
                version="v1"))
        page.goto(server.url + "/?refresh=0.3")
        page.evaluate("""window.loadedOnce = 'yes'; window.polls = 0; window.tables = 0;
            document.body.addEventListener('htmx:afterRequest', (e) => {
              if (e.detail.elt.id === 'poll') window.polls++; });
            document.body.addEventListener('htmx:oobAfterSwap', (e) => {
              if (e.detail.target.id === 'scope-table') window.tables++; });""")
        rows = page.locator("tr.row")
        pager = page.locator("nav.pager")
        assert rows.count() == 100
        expect(pager).to_contain_text("1\u2013100 of 260")

        pager.get_by_role("link", name="160 more →").click()
        expect(pager).to_contain_text("101\u2013200 of 260")
        expect(page).to_have_url(re.compile(r"\?sort=status&offset=100&refresh=0\.3$"))
        first_on_page_two = rows.first.get_attribute("data-name")
        assert rows.count() == 100

        # The refresh keeps the page (it sends the offset) and, nothing having changed, sends
        # the table once (the first poll holds no tags) and then no more.
        sizes: list[int] = []  # of each /parts/live answer, as the browser received it
        page.on("response", lambda r: sizes.append(int(r.headers["content-length"]))
                if "/parts/live" in r.url else None)
        deadline = time.monotonic() + 10
        while len(sizes) < 5:
            assert time.monotonic() < deadline, "the page stopped polling"
            page.wait_for_timeout(100)
        assert sum(size > 1000 for size in sizes) <= 1, sizes  # the "updated" line alone
        assert rows.first.get_attribute("data-name") == first_on_page_two
        expect(pager).to_contain_text("101\u2013200 of 260")

        page.fill("#q", "model-12")  # models 120-129 and their versions: one page
        expect(pager).to_contain_text("1\u201320 of 20 matching (260 in all)")
        expect(page).to_have_url(re.compile(r"\?q=model-12&sort=status&refresh=0\.3$"))
        assert pager.get_by_role("link").count() == 0

        # A failure on this view: the next refresh brings the table with it, unasked.
        page.evaluate("window.tables = 0")
        helpers.send(server.url, clock, helpers.body(
            "failed", at=clock.now, model="fleet/model-123", deployment=None, version="v1",
            error="boom"))
        row = page.locator('tr.row[data-scope="model"][data-name="fleet/model-123"]')
        expect(row.locator("td").nth(2)).to_have_text("50%")
        assert page.evaluate("window.tables") >= 1
        assert page.evaluate("window.loadedOnce") == "yes"  # all of it in the same document
        assert page.console_errors == []
