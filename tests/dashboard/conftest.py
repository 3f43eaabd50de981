"""Fixtures for the dashboard tests: notifier receivers, an app with alert rules, Chromium."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi import FastAPI

from hookwatch.app import create_app
from tests.conftest import ManualClock, make_settings
from tests.dashboard import helpers
from tests.notifiers.helpers import Receiver

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--no-first-run"]


@pytest.fixture
def receivers() -> Iterator[dict[str, Receiver]]:
    """Three webhook notifiers' endpoints: one accepts, one is down (503), one refuses (400)."""
    with Receiver() as ok, \
            Receiver(answer=lambda _r: (503, {}, b"upstream overloaded")) as down, \
            Receiver(answer=lambda _r: (400, {}, b"invalid routing key")) as bad:
        yield {"team-slack": ok, "pagerduty": down, "audit-log": bad}


@pytest.fixture
def dash_app(
    tmp_path: Path, sqlite_url: str, clock: ManualClock, receivers: dict[str, Receiver]
) -> Callable[..., FastAPI]:
    """create_app with the test rules (tests.dashboard.helpers.config) and the receivers."""

    def factory(database_url: str | None = None, **overrides: Any) -> FastAPI:
        config = helpers.config(tmp_path, {n: f"{r.url}/{n}" for n, r in receivers.items()})
        settings = make_settings(database_url or sqlite_url, **overrides)
        return create_app(settings, clock=clock, config=config, run_jobs=False)

    return factory


@pytest.fixture(scope="module")
def chromium() -> Iterator[Any]:
    """Debian's Chromium under Playwright, one per module (never `playwright install`)."""
    if not Path(CHROMIUM).exists():
        if os.environ.get("CI"):
            pytest.fail(f"{CHROMIUM} is not installed; .ci/run installs Debian's chromium")
        pytest.skip(f"{CHROMIUM} is not installed (apt-get install chromium)")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            yield browser
        finally:
            browser.close()


def open_page(chromium: Any, *, width: int = 1400, bypass_csp: bool = False) -> Iterator[Any]:
    """A page in a fresh context that records its dialogs and console errors."""
    context = chromium.new_context(viewport={"width": width, "height": 1000},
                                   bypass_csp=bypass_csp)
    page = context.new_page()
    page.dialogs = []
    page.on("dialog", lambda d: (page.dialogs.append(d.message), d.dismiss()))
    page.console_errors = []
    page.on("console", lambda m: m.type == "error" and page.console_errors.append(m.text))
    page.set_default_timeout(10_000)
    yield page
    context.close()


@pytest.fixture
def page(chromium: Any) -> Iterator[Any]:
    yield from open_page(chromium)
