"""Spend and latency on the page and in /api/status, from signed webhooks over HTTP, on SQLite
and PostgreSQL: spend against a hand count, null for an unmapped scope, percentiles within
their bound, the latency sparkline and the price table's date."""

from __future__ import annotations

from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from hookwatch.alerts.pricing import Pricing
from hookwatch.app import create_app
from hookwatch.config import Config
from hookwatch.dashboard.svg import latency_sparkline
from hookwatch.storage.percentiles import RELATIVE_ERROR, histograms
from tests.conftest import ManualClock, make_settings
from tests.dashboard import helpers

PRICING = Pricing(as_of="2026-11-01", scopes={"acme/sdxl*": "gpu-a100-large"})


def test_spend_and_latency_per_scope(tmp_path: Path, clock: ManualClock, db_url: str) -> None:
    config = Config(pricing=PRICING)
    app = create_app(make_settings(db_url), clock=clock, config=config, run_jobs=False)
    with TestClient(app) as client:
        for _ in range(4):
            helpers.send(client, clock, helpers.body("succeeded", at=clock.now,
                                                     predict_time=10.0, queue_time=30.0))
        helpers.send(client, clock, helpers.body("succeeded", at=clock.now, model="meta/llm",
                                                 deployment=None, predict_time=5.0))
        clock.advance(2 * 3600)  # the first four leave the hour, stay in the day
        helpers.send(client, clock, helpers.body("failed", at=clock.now, predict_time=20.0,
                                                 queue_time=30.0, error="boom"))
        clock.advance(120)  # the page's percentiles cover closed minutes (dashboard.readings)
        status = client.get("/api/status").json()
        rows = {(r["scope"], r["name"]): r for r in status["scopes"]}
        page = client.get("/").text
        with app.state.runtime.engine.connect() as conn:
            total = histograms(conn, now=clock.now, window=3600, metric="total")

    assert status["prices_as_of"] == "2026-11-01"
    dep = rows[("deployment", "acme/sdxl-prod")]
    assert dep["spend_1h"] == pytest.approx(20.0 * 0.0014)
    assert dep["spend_24h"] == pytest.approx(60.0 * 0.0014)  # hand count: 4 x 10 s + 20 s
    assert rows[("model", "acme/sdxl")]["spend_24h"] == pytest.approx(60.0 * 0.0014)
    llm = rows[("model", "meta/llm")]
    assert llm["spend_1h"] is None and llm["spend_24h"] is None  # no hardware: never a guess
    assert llm["queue_p95"] is None  # nothing in the last hour
    assert abs(dep["queue_p95"] - 30.0) <= RELATIVE_ERROR * 30.0
    assert abs(dep["predict_p95"] - 20.0) <= RELATIVE_ERROR * 20.0
    # completed - created reaches the total-time histogram through the receiver and writer
    assert sum(total[("deployment", "acme/sdxl-prod")].values()) == 1

    assert "prices 2026-11-01" in page
    assert "$0.028 / $0.084 / $2.5<" in page  # 1h / 24h / a month at the 24 h rate
    assert 'spend unknown">—</td>' in page
    assert page.count("lspark") == len(rows)


def test_latency_sparkline_draws_gaps_and_names_its_peak() -> None:
    svg = str(latency_sparkline([None, 2.0, 4.0, None, 1.0]))
    assert "predict p95 by hour: peak 4 s, last 1 s" in svg
    assert svg.count("M") == 2  # a gap where an hour had no predictions
    assert "no data" in str(latency_sparkline([None] * 24))
