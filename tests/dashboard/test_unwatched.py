"""A scope no rule watches says "unwatched", never "ok": in the page, /api/status and badges."""

from __future__ import annotations

import re
from collections.abc import Callable

from fastapi import FastAPI
from fastapi.testclient import TestClient

from hookwatch.alerts.rules import ErrorRateRule
from hookwatch.dashboard.picture import Watch, scope_status
from hookwatch.dashboard.readings import ScopeReading
from hookwatch.storage.rates import Counts
from tests.conftest import ManualClock
from tests.dashboard import helpers


def _rule(scope: str, match: str = "*") -> ErrorRateRule:
    return ErrorRateRule(name=f"{scope}-rule", scope=scope, match=match)


def test_watch_follows_the_rules_scope_kinds_and_match_globs() -> None:
    watch = Watch([_rule("deployment"), _rule("model", "acme/*")])
    assert watch.watched("deployment", "anything/at-all")
    assert watch.watched("model", "acme/sdxl")
    assert not watch.watched("model", "other/sdxl")
    assert not watch.watched("model", "ACME/sdxl")  # fnmatchcase, as the evaluator matches
    assert not watch.watched("version", "acme/sdxl:5c7d")
    assert watch.why_not("version") == "no rule watches versions"
    assert watch.why_not("model") == "no rule's match covers this model"
    assert Watch().watched("version", "x")  # built without rules: everything is watched
    assert not Watch([]).watched("model", "x")  # with no rules at all: nothing is


def test_scope_status_says_unwatched_only_where_it_would_say_ok() -> None:
    busy = ScopeReading("version", "v")
    busy.windows["1h"] = Counts(succeeded=7, failed=3)
    assert scope_status(busy, None, watched=True) == "ok"
    assert scope_status(busy, None, watched=False) == "unwatched"
    assert scope_status(ScopeReading("version", "v"), None, watched=False) == "no data"
    assert scope_status(busy, "firing", watched=False) == "firing"  # an alert still decides


def test_version_rows_say_unwatched_with_a_title_and_models_stay_ok(
    dash_app: Callable[..., FastAPI], clock: ManualClock
) -> None:
    with TestClient(dash_app()) as client:
        for i in range(4):
            helpers.send(client, clock, helpers.body(
                "failed" if i == 0 else "succeeded", at=clock.now, model="acme/a",
                deployment=None, version="v1", error="boom" if i == 0 else None))
        page = client.get("/").text
        version = re.search(r'data-scope="version" data-name="acme/a:v1">.*?</tr>', page, re.S)
        model = re.search(r'data-scope="model" data-name="acme/a">.*?</tr>', page, re.S)
        assert version is not None and model is not None
        assert ('<span class="pill st-unwatched" title="no rule watches versions">unwatched'
                in version.group(0))
        assert '<span class="pill st-ok">ok</span>' in model.group(0)
        statuses = {(s["scope"], s["status"]) for s in client.get("/api/status").json()["scopes"]}
        assert statuses == {("model", "ok"), ("version", "unwatched")}
        problems = client.get("/api/status", params={"status": "problems"}).json()["scopes"]
        assert problems == []  # unwatched is no problem of its own
        only = client.get("/api/status", params={"status": "unwatched"}).json()["scopes"]
        assert [s["name"] for s in only] == ["acme/a:v1"]
