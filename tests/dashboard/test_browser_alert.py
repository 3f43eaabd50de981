"""The alert page in a real Chromium: opened from the links of delivered Slack and PagerDuty
payloads, its chart and notifications shown, acknowledged through its form."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import expect

from hookwatch.app import create_app
from hookwatch.config import load_config
from tests.conftest import LiveServer, ManualClock, free_port, make_settings
from tests.dashboard import helpers
from tests.dashboard.conftest import open_page
from tests.notifiers.helpers import ROUTING_KEY, SLACK_PATH, Receiver, pagerduty_answer

pytestmark = pytest.mark.browser


@pytest.fixture
def page(chromium: Any) -> Iterator[Any]:
    yield from open_page(chromium, width=1280)  # its screenshot's width


def _slack_link(payload: dict[str, Any]) -> str:
    for block in payload["blocks"]:
        if block["type"] == "actions":
            return str(block["elements"][0]["url"])
    raise AssertionError("no Open in hookwatch button")


def test_links_in_slack_and_pagerduty_open_the_alert_page_and_acknowledge_works(
    clock: ManualClock, page: Any, tmp_path: Path, sqlite_url: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("PD_KEY", ROUTING_KEY)
    port = free_port()
    url = f"http://127.0.0.1:{port}"  # the public URL: the links in notifications
    with Receiver() as slack, Receiver(answer=pagerduty_answer) as pagerduty:
        path = tmp_path / "hookwatch.toml"
        path.write_text(f"""
[notifiers.team]
type = "slack"
webhook_url = "{slack.url}{SLACK_PATH}"

[notifiers.oncall]
type = "pagerduty"
routing_key = "${{PD_KEY}}"
events_url = "{pagerduty.url}/v2/enqueue"

[[rules]]
name = "deployment-error-rate"
kind = "error_rate"
scope = "deployment"
window = "10m"
threshold = 0.2
min_predictions = 5
severity = "critical"
notify = ["team", "oncall"]
""")
        app = create_app(make_settings(sqlite_url, public_url=url), clock=clock,
                         config=load_config(path), run_jobs=False)
        with LiveServer(app, port=port) as server:
            helpers.burst(server.url, clock)
            app.state.jobs.run_now("evaluate")
            app.state.jobs.run_now("deliver")
            link = _slack_link(slack.requests[0].json())
            assert link.startswith(server.url + "/alerts/")
            event = pagerduty.requests[0].json()
            assert event["links"][0] == {"href": link, "text": "Open in hookwatch"}
            assert event["client_url"] == link

            page.goto(link)
            expect(page.locator("#alert h1")).to_contain_text(
                "deployment-error-rate on deployment acme/sdxl-prod")
            expect(page.locator("#alert-state")).to_have_text("firing")
            chart = page.locator("svg.alert-chart")
            expect(chart).to_be_visible()
            assert (chart.bounding_box() or {}).get("width", 0) > 300
            assert "threshold 20%" in (chart.locator("title").first.text_content() or "")
            rows = page.locator("#notifications tbody tr")
            fates = {r.locator("td").nth(0).inner_text(): r.locator("td").nth(2).inner_text()
                     for r in rows.all()}
            assert fates == {"team": "sent", "oncall": "sent"}
            expect(page.locator("#failing")).to_contain_text("CUDA out of memory")

            form = page.locator("form.ack")
            form.locator("input[name=by]").fill("alice")
            form.locator("input[name=comment]").fill("rolling back to v41")
            form.get_by_role("button", name="Acknowledge").click()
            expect(page.locator("#alert-ack")).to_contain_text("by alice")
            assert page.url == link  # back on the alert page after the form's 303
            expect(page.locator("form.ack")).to_have_count(0)

            app.state.jobs.run_now("deliver")  # the acknowledgement goes to both channels
            page.goto(pagerduty.requests[0].json()["links"][0]["href"])
            expect(page.locator("#alert-ack")).to_contain_text("rolling back to v41")
            kinds = page.locator("#notifications tbody tr").evaluate_all(
                "rows => rows.map(r => r.dataset.kind)")
            assert sorted(kinds) == ["acknowledge", "acknowledge", "trigger", "trigger"]

            if shot := os.environ.get("HOOKWATCH_ALERT_SCREENSHOT"):
                page.screenshot(path=shot, full_page=True)
            page.locator("#failing a.prediction").first.click()
            expect(page.locator("#error")).to_contain_text("CUDA out of memory")
            page.goto(server.url + "/alerts/4242")
            expect(page.locator("#not-found")).to_contain_text("there is no alert 4242")
            # Only the 404 itself (Chromium logs a failed load); no CSP or script error.
            assert [e for e in page.console_errors if "404" not in e] == []
