"""The page and /api/status at many scopes (issue 20): attention first, bounded pages in a
stable order, search and filters on the server, the API's limit and offset, the live refresh
sending only the parts that changed, and the shared summary. A real app on real SQLite; 300
scopes are enough to need three pages."""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from hookwatch.dashboard import changes
from hookwatch.dashboard.listing import PAGE_ROWS, Listing
from tests.conftest import ManualClock
from tests.dashboard import helpers

MODELS = 150  # a model and a version scope each: 300 scopes, three pages of 100
ROW = re.compile(r'<tr class="row" data-scope="([a-z]+)" data-name="([^"]*)"><td class="name"'
                 r'[^>]*>.*?</td><td><span class="pill st-([a-z-]+)"')


def _rows(html: str) -> list[tuple[str, str, str]]:
    return ROW.findall(html)


def _next(html: str) -> str | None:
    found = re.search(r'<a href="(/\?[^"]*)" data-offset="\d+" rel="next">', html)
    return found.group(1).replace("&amp;", "&") if found else None


def _fleet(client: TestClient, clock: ManualClock) -> None:
    """MODELS models with one good prediction each; model-007 through a deployment that
    fails 6 of 6 (its rule fires), model-042 failing 1 of 4 (the worst rate with no alert)."""
    for i in range(MODELS):
        helpers.send(client, clock, helpers.body(
            "succeeded", at=clock.now, model=f"fleet/model-{i:03d}", deployment=None,
            version="v1"))
    for _ in range(6):
        helpers.send(client, clock, helpers.body(
            "failed", at=clock.now, model="fleet/model-007", deployment="fleet/prod",
            version="v1", error="boom"))
    for i in range(3):
        helpers.send(client, clock, helpers.body(
            "failed" if i == 0 else "succeeded", at=clock.now, model="fleet/model-042",
            deployment=None, version="v1", error="boom" if i == 0 else None))


@pytest.fixture
def fleet(dash_app: Callable[..., FastAPI], clock: ManualClock) -> Iterator[TestClient]:
    app = dash_app()
    with TestClient(app) as client:
        _fleet(client, clock)
        app.state.jobs.run_now("evaluate")
        yield client


def test_the_page_is_bounded_attention_first_and_pages_through_everything_once(
    fleet: TestClient,
) -> None:
    page = fleet.get("/").text
    rows = _rows(page)
    assert len(rows) == PAGE_ROWS
    # Firing first, then pending (model-007: its model rule waits 5 minutes), on their own...
    assert re.findall(r'<tr class="group[^"]*"><th colspan="\d+">([^<]+)</th>', page)[0] == (
        "needs attention · 2")
    assert rows[:2] == [("deployment", "fleet/prod", "firing"),
                        ("model", "fleet/model-007", "pending")]
    # ...then the healthy by error rate: model-042 (1 of 4 failed) first. Versions no rule
    # watches ("unwatched") come after every scope a rule watches, so none is on this page.
    assert rows[2] == ("model", "fleet/model-042", "ok")
    assert {kind for kind, _, _ in rows} == {"deployment", "model"}
    later = _rows(fleet.get("/?offset=100").text)
    versions = [row for row in later if row[0] == "version"]
    assert versions[:2] == [("version", "fleet/model-007:v1", "unwatched"),  # 6 of 7 failed
                            ("version", "fleet/model-042:v1", "unwatched")]
    assert f"1\u2013{PAGE_ROWS} of {2 * MODELS + 1}" in page
    seen = list(rows)
    link = _next(page)
    assert link == "/?sort=status&offset=100"
    pages = 1
    while link is not None:
        page = fleet.get(link).text
        seen += _rows(page)
        link = _next(page)
        pages += 1
    assert pages == 4 and 'rel="prev"' in page  # 301 scopes: 100, 100, 100, 1
    assert len(seen) == len(set(seen)) == 2 * MODELS + 1  # every scope once: a stable order
    # The same order on a second pass (ties broken by name, then kind).
    assert _rows(fleet.get("/?offset=100").text) == seen[100:200]
    assert _rows(fleet.get("/?offset=999999").text) == seen[-1:]  # past the end: the last


def test_search_and_filters_are_done_on_the_server_over_every_scope(fleet: TestClient) -> None:
    found = _rows(fleet.get("/?q=MODEL-14").text)  # any case, anywhere in the name
    assert [name for _, name, _ in found] == [  # models, then versions; by name (all 0%)
        f"fleet/model-14{i}{suffix}" for suffix in ("", ":v1") for i in range(10)]
    assert "1\u201320 of 20 matching (301 in all)" in fleet.get("/?q=model-14").text
    versions = fleet.get("/?kind=version&status=unwatched").text  # no rule watches versions
    assert {kind for kind, _, _ in _rows(versions)} == {"version"}
    assert "1\u2013100 of 150 matching (301 in all)" in versions
    assert "No scope matches" in fleet.get("/?kind=version&status=ok").text
    problems = _rows(fleet.get("/?status=problems").text)
    assert [name for _, name, _ in problems] == ["fleet/prod", "fleet/model-007"]
    # A filter keeps its own pages, and the links keep the filter.
    page = fleet.get("/?kind=model&sort=name").text
    assert _next(page) == "/?kind=model&sort=name&offset=100"
    later = _rows(fleet.get("/?kind=model&sort=name&offset=100").text)
    assert [name for _, name, _ in later] == [f"fleet/model-{i:03d}" for i in range(100, 150)]
    assert "No scope matches this filter (301 in all)" in fleet.get("/?q=nothing").text


def test_status_api_filters_limits_and_pages(fleet: TestClient) -> None:
    first = fleet.get("/api/status", params={"limit": 2}).json()
    assert (first["total_scopes"], first["matched"], first["offset"], first["limit"],
            first["next_offset"]) == (301, 301, 0, 2, 2)
    assert [(s["scope"], s["name"], s["status"]) for s in first["scopes"]] == [
        ("deployment", "fleet/prod", "firing"), ("model", "fleet/model-007", "pending")]
    assert first["scopes"][0]["windows"]["5m"]["error_rate"] == 1.0  # the contract's fields
    assert [a["state"] for a in first["alerts"]] == ["firing", "pending"]
    names: list[str] = []
    offset: int | None = 0
    while offset is not None:
        answer = fleet.get("/api/status", params={"limit": 120, "offset": offset}).json()
        names += [f"{s['scope']} {s['name']}" for s in answer["scopes"]]
        offset = answer["next_offset"]
    assert len(names) == len(set(names)) == 301
    assert fleet.get("/api/status").json()["limit"] == 1000  # the default

    glob = fleet.get("/api/status", params={"name": "fleet/model-14*", "scope": "model"}).json()
    assert [s["name"] for s in glob["scopes"]] == [f"fleet/model-14{i}" for i in range(10)]
    assert glob["matched"] == 10 and glob["next_offset"] is None
    exact = fleet.get("/api/status", params={"name": "fleet/model-042:v1"}).json()
    assert [(s["scope"], s["status"]) for s in exact["scopes"]] == [("version", "unwatched")]
    firing = fleet.get("/api/status", params={"status": "firing"}).json()
    assert [s["name"] for s in firing["scopes"]] == ["fleet/prod"]
    by_kind = fleet.get("/api/status", params={"kind": "deployment"}).json()
    assert by_kind["matched"] == 1

    for params in ({"limit": 0}, {"limit": 5001}, {"offset": -1}, {"limit": "many"},
                   {"scope": "team"}, {"status": "broken"}, {"sort": "nope"}):
        refused = fleet.get("/api/status", params=params)
        assert refused.status_code == 422, params
        assert refused.json()["error"] == "invalid_request" and refused.json()["detail"]


def _parts(html: str) -> list[str]:
    return re.findall(r'id="([\w-]+)"[^>]*hx-swap-oob="true"', html)


def test_the_live_refresh_sends_only_the_parts_that_changed(
    dash_app: Callable[..., FastAPI], clock: ManualClock
) -> None:
    with TestClient(dash_app()) as client:
        _fleet(client, clock)
        full = client.get("/parts/live", params={"q": "model-04"})
        assert _parts(full.text) == ["updated", "headline", "notifiers", "alerts", "scope-table",
                                     "failures"]
        held = full.headers[changes.HEADER]
        assert set(changes.parse(held)) == {"headline", "notifiers", "alerts", "scope-table",
                                            "failures"}

        quiet = client.get("/parts/live", params={"q": "model-04"},
                           headers={changes.HEADER: held})
        assert _parts(quiet.text) == ["updated"] and len(quiet.content) < 300
        assert quiet.headers[changes.HEADER] == held
        clock.advance(2)  # a later refresh: "since 2 s ago" is new text, the table is not
        later = client.get("/parts/live", params={"q": "model-04"},
                           headers={changes.HEADER: held})
        assert _parts(later.text) == ["updated", "failures"] and len(later.content) < 2000
        held = later.headers[changes.HEADER]

        # A failure for a scope on this view: its table changes, and the failure groups.
        helpers.send(client, clock, helpers.body(
            "failed", at=clock.now, model="fleet/model-041", deployment=None, version="v1",
            error="a new kind of failure"))
        moved = client.get("/parts/live", params={"q": "model-04"},
                           headers={changes.HEADER: held})
        assert _parts(moved.text) == ["updated", "scope-table", "failures"]
        assert "fleet/model-041" in moved.text
        # One outside the view: the table this viewer sees is the same, so not sent.
        held = moved.headers[changes.HEADER]
        helpers.send(client, clock, helpers.body(
            "succeeded", at=clock.now, model="fleet/model-120", deployment=None, version="v1"))
        assert _parts(client.get("/parts/live", params={"q": "model-04"},
                                 headers={changes.HEADER: held}).text) == ["updated"]
        # Tags from another view, or none that parse, get every part.
        other = client.get("/parts/live", params={"q": "model-12"},
                           headers={changes.HEADER: held})
        assert _parts(other.text) == ["updated", "scope-table"]
        assert len(_parts(client.get("/parts/live", headers={changes.HEADER: "x"}).text)) == 6


def test_the_summary_is_built_once_per_change_and_shared(
    dash_app: Callable[..., FastAPI], clock: ManualClock
) -> None:
    app = dash_app()
    listing = app.state.runtime.dashboard.listing
    with TestClient(app) as client:
        _fleet(client, clock)
        client.get("/")
        built = listing.builds
        for path in ("/", "/parts/live", "/?q=model-1", "/?sort=name&offset=100", "/api/status"):
            assert client.get(path).status_code == 200
        assert listing.builds == built  # five views, one summary
        helpers.send(client, clock, helpers.body(
            "failed", at=clock.now, model="fleet/model-099", deployment=None, version="v1",
            error="x"))
        worst = [name for _, name, _ in _rows(client.get("/").text)[:3]]
        assert worst == ["fleet/model-007", "fleet/model-099", "fleet/model-042"]  # 1 of 2
        assert listing.builds == built + 1  # the commit rebuilt it, at once
        clock.advance(60)  # the windows slide: rebuilt
        client.get("/")
        assert listing.builds == built + 2


def test_a_slow_build_runs_off_the_request_and_the_last_summary_is_served_meanwhile(
    dash_app: Callable[..., FastAPI], clock: ManualClock
) -> None:
    app = dash_app()
    board = app.state.runtime.dashboard
    # Every build counts as slow here (at 40,000 scopes one takes seconds).
    board.listing = Listing(slow=0.0, many=0, pause=0.0)
    app.state.runtime.counted_listeners.append(board.listing.touch)
    with TestClient(app) as client:
        helpers.send(client, clock, helpers.body("succeeded", at=clock.now, model="a/one",
                                                 deployment=None))
        assert [n for _, n, _ in _rows(client.get("/").text)] == ["a/one", "a/one:" + (
            "5c7d5dc6dd8bf75c1acaa8565735e7986bc5b66206b55cca93cb72c9bf15ccaa")]
        helpers.send(client, clock, helpers.body("failed", at=clock.now, model="b/two",
                                                 deployment=None, version="v1", error="e"))
        stale = client.get("/?kind=model").text  # answered from the summary it had
        board.listing.wait()
        fresh = client.get("/?kind=model").text
        assert [n for _, n, _ in _rows(stale)] == ["a/one"]
        assert [n for _, n, _ in _rows(fresh)] == ["b/two", "a/one"]
        clock.advance(3600)  # older than MAX_STALE: never served, the request builds
        helpers.send(client, clock, helpers.body("succeeded", at=clock.now, model="c/three",
                                                 deployment=None, version="v1"))
        assert "c/three" in client.get("/?kind=model").text
