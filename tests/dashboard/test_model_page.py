"""The model page: versions side by side, the regression verdict, new fingerprints marked."""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from hookwatch.storage.migrate import upgrade
from tests.conftest import LiveServer, ManualClock
from tests.dashboard import helpers

V1 = "39ed52f2a78e934b3ba6e2a89f5b1c712de7dfea535525255b1aa35c5565e08b"
V2 = "5c7d5dc6dd8bf75c1acaa8565735e7986bc5b66206b55cca93cb72c9bf15ccaa"


def _batch(app: FastAPI, clock: ManualClock, version: str, ok: int, failed: int,
           error: str, predict_time: float) -> None:
    events = [helpers.event("succeeded", at=clock.now, version=version,
                            predict_time=predict_time) for _ in range(ok)]
    events += [helpers.event("failed", at=clock.now, version=version, error=error,
                             predict_time=predict_time) for _ in range(failed)]
    helpers.ingest(app, clock, events)


def test_versions_side_by_side_with_the_verdict_and_new_errors(
    dash_app: Callable[..., FastAPI], clock: ManualClock
) -> None:
    app = dash_app()
    with TestClient(app) as client:
        assert client.get("/models/acme/nothing").status_code == 404
        clock.advance(-3 * 86400)
        _batch(app, clock, V1, 10, 1, "worker crashed", 1.0)  # an old fingerprint
        clock.advance(3 * 86400 - 7200)
        _batch(app, clock, V1, 297, 3, "worker crashed", 1.0)
        clock.advance(7200)
        _batch(app, clock, V2, 30, 10, "ValueError: size 1025 is not a multiple of 64", 2.0)
        page = client.get("/models/acme/sdxl")
        assert page.status_code == 200, page.text
        html = page.text
        rows = re.findall(r'<tr data-version="(\w+)">(.*?)</tr>', html, re.S)
        assert [v for v, _ in rows] == [V2, V1]  # newest first seen first
        newest, previous = rows[0][1], rows[1][1]
        assert "newest" in newest and ">40<" in newest and ">25%<" in newest
        assert "previous" in previous and ">300<" in previous and ">1.0%<" in previous
        assert re.search(r"\d+(\.\d)? s / \d", newest)
        verdict = re.search(r'<li data-state="(\w+)">(.*?)</li>', html, re.S)
        assert verdict is not None and verdict.group(1) == "worse"
        assert "10 of 40 failed (25%) against 3 of 300 (1%) for 39ed52f2" in verdict.group(2)
        marked = re.findall(r'<tr class="new">.*?<code>(.*?)</code>', html, re.S)
        assert marked == ["ValueError: size &lt;n&gt; is not a multiple of &lt;n&gt;"]
        assert "worker crashed" in html
        assert '<a href="/models/acme/sdxl">acme/sdxl</a>' in client.get("/").text


@pytest.mark.browser
def test_model_page_in_chromium_from_the_status_page(
    dash_app: Callable[..., FastAPI], clock: ManualClock, chromium: Any
) -> None:
    app = dash_app()
    upgrade(app.state.runtime.engine)  # the history is written before the service starts
    clock.advance(-7200)
    _batch(app, clock, V1, 297, 3, "worker crashed", 1.0)
    clock.advance(7200)
    _batch(app, clock, V2, 30, 10, "ValueError: size 1025 is not a multiple of 64", 2.0)
    context = chromium.new_context(viewport={"width": 1400, "height": 1000})
    page = context.new_page()
    errors: list[str] = []
    page.on("console", lambda m: m.type == "error" and errors.append(m.text))
    try:
        with LiveServer(app) as server:
            page.goto(server.url + "/")
            page.locator('tr.row[data-name="acme/sdxl"] td.name a').click()
            page.wait_for_url(server.url + "/models/acme/sdxl")
            versions = page.locator("#versions tbody tr")
            assert versions.count() == 2
            assert versions.nth(0).locator("td").nth(3).inner_text() == "25%"
            verdict = page.locator("#regression li").first
            assert verdict.get_attribute("data-state") == "worse"
            assert "10 of 40 failed (25%)" in verdict.inner_text()
            assert page.locator("#fingerprints tr.new").count() == 2  # both first seen today
    finally:
        context.close()
    assert errors == []  # nothing refused by the page's Content-Security-Policy
