"""The status page in a real Chromium, against hookwatch served by uvicorn."""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pytest
from fastapi import FastAPI
from playwright.sync_api import expect
from sqlmodel import Session, select

from hookwatch.storage.tables import Alert
from tests.conftest import LiveServer, ManualClock
from tests.dashboard import helpers
from tests.dashboard.conftest import open_page

pytestmark = pytest.mark.browser
DOCS = Path(__file__).resolve().parents[2] / "docs"


@pytest.fixture
def page_without_csp(chromium: Any) -> Iterator[Any]:
    """The page's Content-Security-Policy off: a hostile-input test then checks escaping alone."""
    yield from open_page(chromium, bypass_csp=True)


def _fire(app: FastAPI) -> None:
    app.state.jobs.run_now("evaluate")
    app.state.jobs.run_now("deliver")


def test_page_shows_scopes_rates_a_firing_alert_and_acknowledge_works(
    dash_app: Callable[..., FastAPI], clock: ManualClock, page: Any, tmp_path: Path
) -> None:
    app = dash_app()
    clock.advance(-3000)
    helpers.history(app, clock)  # the past, written before the service starts
    with LiveServer(app) as server:
        helpers.recent(server.url, clock)
        helpers.burst(server.url, clock)
        _fire(app)
        clock.advance(5)
        page.goto(server.url + "/")

        headline = page.locator("#headline")
        assert "1 alert firing" in headline.inner_text()
        assert "deployment acme/sdxl-prod" in headline.inner_text()
        row = page.locator('tr.row[data-scope="deployment"][data-name="acme/sdxl-prod"]')
        cells = row.locator("td").all_inner_texts()
        # name, status, 5m, 1h, 24h: 10 of 14 in the burst failed, 5m sees the last 5 minutes
        assert cells[0] == "acme/sdxl-prod" and cells[1] == "firing"
        assert cells[2] == "71%" and cells[3] == "37%"  # 10/14 in 5m; 10/27 in the hour
        assert page.locator("tr.row").count() == 13  # 5 models, 3 deployments, 5 versions
        history = row.locator("svg.history title").text_content() or ""
        assert re.fullmatch(r"90 days: 9\d\.\d\d% succeeded, worst day \d+\.\d% errors", history)
        spark = row.locator("svg.spark title").text_content() or ""
        assert spark == "error rate: peak 66.7%, last 66.7%"  # this hour: 10 of 15 failed
        assert page.locator('tr.row[data-name="acme/whisper-large"] td').nth(1).inner_text() == "ok"
        version = page.locator('tr.row[data-scope="version"]').first.locator("td .pill")
        assert version.inner_text() == "unwatched"  # the test rules watch no version
        assert version.get_attribute("title") == "no rule watches versions"

        card = page.locator("article.alert.state-firing")
        assert "critical" in card.inner_text() and "acme/sdxl-prod" in card.inner_text()
        deliveries = dict(
            (r.locator("td").nth(0).inner_text(), r.locator("td").nth(2).inner_text())
            for r in card.locator("table.deliveries tr").all()
        )
        assert deliveries == {"team-slack": "sent", "pagerduty": "retrying",
                              "audit-log": "failed"}
        assert "invalid routing key" in card.inner_text()
        assert page.locator("#failures").get_by_text("CUDA out of memory").count() == 1

        shot = tmp_path / "screenshot.png"
        page.screenshot(path=str(shot), full_page=True)
        if os.environ.get("HOOKWATCH_UPDATE_SCREENSHOT"):
            DOCS.mkdir(exist_ok=True)
            page.screenshot(path=str(DOCS / "screenshot.png"), full_page=True)

        ack = card.locator("form.ack")
        ack.locator("input[name=by]").fill("alice")
        ack.locator("input[name=comment]").fill("rolling back to v41")
        ack.get_by_role("button", name="Acknowledge").click()
        page.locator("#flash", has_text="acknowledged by alice").wait_for()
        assert "acknowledged by alice" in page.locator("article.alert.state-firing").inner_text()
        assert "rolling back to v41" in page.locator("#alerts").inner_text()
        assert "acknowledged or muted" in page.locator("#headline").inner_text()
        with Session(app.state.runtime.engine) as session:
            alert = session.exec(select(Alert).where(Alert.state == "firing")).one()
            assert (alert.acked_by, alert.ack_comment) == ("alice", "rolling back to v41")
        assert page.dialogs == []
        assert page.console_errors == []  # htmx and our script run under the strict CSP


def test_a_failure_sent_after_the_page_loaded_appears_without_a_reload(
    dash_app: Callable[..., FastAPI], clock: ManualClock, page: Any
) -> None:
    app = dash_app()
    with LiveServer(app) as server:
        helpers.send(server.url, clock, helpers.body("succeeded", at=clock.now))
        page.goto(server.url + "/?refresh=0.3")
        page.evaluate("window.loadedOnce = 'yes'")
        assert page.locator('tr.row[data-name="late/model"]').count() == 0

        clock.advance(3)
        helpers.send(server.url, clock, helpers.body(
            "failed", at=clock.now, model="late/model", deployment=None,
            error="ValueError: late failure 17"))
        row = page.locator('tr.row[data-scope="model"][data-name="late/model"]')
        row.wait_for()
        assert row.locator("td").nth(2).inner_text() == "100%"
        page.locator("#failures", has_text="ValueError: late failure <n>").wait_for()
        assert page.evaluate("window.loadedOnce") == "yes"  # the same document: no reload


HOSTILE_MODEL = '<script>window.pwned=1</script><img src=x onerror="window.pwned=2">'
HOSTILE_ERROR = "</pre><img src=x onerror=alert(document.domain)><svg onload=alert(3)>"
HOSTILE_LOGS = "step 1\n</pre><script>window.pwned=4</script>\n<b onmouseover=alert(5)>x</b>"


def test_hostile_names_and_errors_render_as_text_and_run_nothing(
    dash_app: Callable[..., FastAPI], clock: ManualClock, page_without_csp: Any
) -> None:
    page = page_without_csp
    app = dash_app()
    with LiveServer(app) as server:
        for i in range(6):  # enough failures for the deployment rule to fire on this name
            clock.advance(5)
            helpers.send(server.url, clock, helpers.body(
                "failed", at=clock.now, model=HOSTILE_MODEL, deployment=HOSTILE_MODEL,
                version="v1", error=HOSTILE_ERROR, logs=HOSTILE_LOGS,
                prediction_id=f"evil{i}"))
        _fire(app)
        page.goto(server.url + "/")

        names = page.locator('tr.row[data-scope="model"] td.name')
        assert names.all_inner_texts() == [HOSTILE_MODEL]
        assert page.locator('tr.row[data-scope="model"]').get_attribute("data-name") == (
            HOSTILE_MODEL)
        assert HOSTILE_MODEL in page.locator("article.alert").first.inner_text()
        assert HOSTILE_MODEL in page.locator("#headline").inner_text()
        assert "onerror=alert(document.domain)" in page.locator("#failures").inner_text()
        assert page.locator("main img").count() == 0
        assert page.locator("main script").count() == 0

        page.goto(server.url + "/predictions/evil5")
        assert page.locator("#error").inner_text() == HOSTILE_ERROR
        assert page.locator("#logs").inner_text() == HOSTILE_LOGS.rstrip("\n")
        assert page.locator("main img, main b, main script, main svg").count() == 0

        badge = f"{server.url}/badge/model/{quote(HOSTILE_MODEL, safe='')}.svg"
        answer = page.goto(badge)
        assert answer.status == 200 and answer.headers["content-type"] == "image/svg+xml"
        assert page.locator("script, img").count() == 0

        page.goto(server.url + "/?refresh=0.3")
        page.evaluate("""window.swaps = 0;
            document.body.addEventListener('htmx:oobAfterSwap', () => window.swaps++)""")
        page.wait_for_function("window.swaps >= 15")  # three refreshes swapped every part in
        assert HOSTILE_MODEL in page.locator("#scope-table").inner_text()
        assert page.evaluate("window.pwned") is None
        assert page.dialogs == []


def test_private_mode_refuses_without_the_token(
    dash_app: Callable[..., FastAPI], clock: ManualClock, chromium: Any
) -> None:
    app = dash_app(dashboard_token="dash-s3cret-token")
    context = chromium.new_context()
    page = context.new_page()
    try:
        with LiveServer(app) as server:
            helpers.send(server.url, clock, helpers.body("succeeded", at=clock.now))
            answer = page.goto(server.url + "/")
            assert answer.status == 401
            assert "This dashboard is private" in page.content()
            assert "acme/sdxl" not in page.content()
            for path in ("/api/status", "/badge/model/acme/sdxl.svg", "/predictions/x"):
                assert page.request.get(server.url + path).status == 401

            assert page.goto(server.url + "/?token=wrong").status == 401
            page.fill("input[name=token]", "dash-s3cret-token")
            page.click("button[type=submit]")
            page.wait_for_url(server.url + "/")
            assert page.locator('tr.row[data-name="acme/sdxl"]').count() == 1
            (cookie,) = context.cookies()
            assert cookie["httpOnly"] and cookie["sameSite"] == "Lax"
            assert "dash-s3cret-token" not in cookie["value"]
            assert page.request.get(server.url + "/api/status").status == 200

            other = chromium.new_context()
            try:
                second = other.new_page()
                second.goto(server.url + "/?token=dash-s3cret-token&kind=model")
                assert second.url == server.url + "/?kind=model"  # the token left the URL
                assert second.locator('tr.row[data-name="acme/sdxl"]').count() == 1
            finally:
                other.close()
    finally:
        context.close()


def test_filter_and_sort_in_place_and_keep_them_in_the_url(
    dash_app: Callable[..., FastAPI], clock: ManualClock, page: Any
) -> None:
    app = dash_app()
    with LiveServer(app) as server:
        for model, failed in (("acme/b", True), ("zeta/c", False), ("acme/a", False)):
            helpers.send(server.url, clock, helpers.body(
                "failed" if failed else "succeeded", at=clock.now, model=model,
                deployment=None, version="v1", error="boom" if failed else None))
        page.goto(server.url + "/?kind=model")
        page.evaluate("window.loadedOnce = 'yes'")
        names = page.locator("tr.row td.name")
        assert names.all_inner_texts() == ["acme/b", "acme/a", "zeta/c"]  # worst first

        page.locator('th a[data-sort="name"]').click()
        expect(names).to_have_text(["acme/a", "acme/b", "zeta/c"])
        assert "sort=name" in page.url and "kind=model" in page.url
        page.locator('th a[data-sort="name"]').click()  # again: the other way round
        expect(names).to_have_text(["zeta/c", "acme/b", "acme/a"])
        assert "dir=desc" in page.url

        page.fill("#q", "acme")
        expect(names).to_have_text(["acme/b", "acme/a"])
        assert "q=acme" in page.url
        assert page.evaluate("window.loadedOnce") == "yes"
        page.reload()
        expect(names).to_have_text(["acme/b", "acme/a"])  # the URL kept the choice
