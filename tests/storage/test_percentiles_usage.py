"""storage.percentiles and storage.usage over buckets written by the real writer, on SQLite and
PostgreSQL: bucketed percentiles against a direct computation on the same predictions, within
the stated bound; billed seconds against a hand count; the caches against full reads."""

from __future__ import annotations

import math
import random

import pytest
from sqlalchemy import Engine, text

from hookwatch.storage.batch import NewEvent
from hookwatch.storage.percentiles import (
    RELATIVE_ERROR,
    LatencyCache,
    histograms,
    quantile,
)
from hookwatch.storage.usage import Usage, UsageCache, usage
from tests.alerts.helpers import ingest
from tests.conftest import ManualClock

DEP = ("deployment", "acme/sdxl-prod")
MODEL = ("model", "acme/sdxl")
_n = iter(range(10**9))


def finished(status: str, *, at: float, queue: float | None, predict: float | None,
             model: str = "acme/sdxl", deployment: str | None = "acme/sdxl-prod") -> NewEvent:
    """A terminal webhook with Replicate's timestamps: created, started, completed."""
    pid = f"p{next(_n)}"
    created = at - (queue or 0.0) - (predict or 0.0)
    return NewEvent(
        dedup_key=f"t:{pid}", prediction_id=pid, status=status, source="signed",
        received_at=at, sent_at=at, headers="{}", body=b"{}", model=model, version="v1",
        deployment=deployment, created_at=created if queue is not None else None,
        started_at=created + queue if queue is not None else None, completed_at=at,
        predict_time=predict,
    )


def nearest_rank(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[max(0, math.ceil(q * len(ordered)) - 1)]


def test_percentiles_within_the_stated_bound(engine: Engine, clock: ManualClock) -> None:
    rng = random.Random(7)
    events = [finished("succeeded", at=clock.now, queue=rng.lognormvariate(1.5, 1.2),
                       predict=rng.lognormvariate(0.5, 0.8)) for _ in range(400)]
    ingest(engine, clock, events)
    now = clock.advance(5)
    with engine.connect() as conn:
        # The same samples, computed directly from what was stored.
        rows = conn.execute(text(
            "SELECT started_at - created_at, predict_time, completed_at - created_at "
            "FROM predictions WHERE deployment = 'acme/sdxl-prod'")).all()
        found = {metric: histograms(conn, now=now, window=900, metric=metric)
                 for metric in ("queue", "predict", "total")}
    assert len(rows) == 400
    for column, metric in enumerate(("queue", "predict", "total")):
        samples = [float(r[column]) for r in rows]
        hist = found[metric][DEP]
        assert sum(hist.values()) == 400
        assert found[metric][MODEL] == hist  # each scope has its own copy of the counts
        for q in (0.5, 0.9, 0.95, 0.99, 1.0):
            exact = nearest_rank(samples, q)
            estimate = quantile(hist, q)
            assert estimate is not None
            assert abs(estimate - exact) <= RELATIVE_ERROR * exact + 1e-9, (metric, q)
    assert pytest.approx(0.189, abs=0.001) == RELATIVE_ERROR


def test_quantile_edges() -> None:
    assert quantile({}, 0.95) is None
    assert quantile({10: 0}, 0.5) is None
    # 19 fast and 1 slow: p95 is the 19th sample (fast), p99 and p100 the slow one.
    hist = {10: 19, 40: 1}
    assert quantile(hist, 0.95) == quantile({10: 1}, 0.5)
    assert quantile(hist, 0.99) == quantile(hist, 1.0) == quantile({40: 1}, 0.5)


def test_missing_timestamps_leave_a_metric_out(engine: Engine, clock: ManualClock) -> None:
    # A Cog server's bodies may lack created_at: no queue or total time, predict time kept.
    ingest(engine, clock, [finished("succeeded", at=clock.now, queue=None, predict=2.0)])
    with engine.connect() as conn:
        assert histograms(conn, now=clock.now, window=300, metric="queue") == {}
        assert histograms(conn, now=clock.now, window=300, metric="total") == {}
        assert sum(histograms(conn, now=clock.now, window=300, metric="predict")[DEP]
                   .values()) == 1


def test_billed_seconds_against_a_hand_count(engine: Engine, clock: ManualClock) -> None:
    start = clock.now
    ingest(engine, clock, [finished("succeeded", at=clock.now, queue=1.0, predict=p)
                           for p in (10.0, 20.0, 30.5)])
    ingest(engine, clock, [finished("failed", at=clock.now, queue=1.0, predict=4.25),
                           finished("canceled", at=clock.now, queue=1.0, predict=None)])
    clock.now = start - 2 * 3600  # outside the hour
    ingest(engine, clock, [finished("succeeded", at=clock.now, queue=1.0, predict=100.0)])
    now = clock.now = start + 30
    with engine.connect() as conn:
        hour = usage(conn, now=now, window=3600)
        day = usage(conn, now=now, window=86400)
    assert hour[DEP] == Usage(seconds=10.0 + 20.0 + 30.5 + 4.25, predictions=4)
    assert day[DEP] == Usage(seconds=164.75, predictions=5)


@pytest.mark.parametrize("seed", [1, 2])
def test_caches_match_full_reads(engine: Engine, clock: ManualClock, seed: int) -> None:
    """Over two simulated hours, every 37 s, the cached reads equal the full ones."""
    rng = random.Random(seed)
    latency, used = LatencyCache(grace=15, refresh=600.0), UsageCache(grace=15, refresh=600.0)
    wants = [("queue", 300.0), ("predict", 900.0), ("total", 3 * 3600.0)]
    windows = [300.0, 3600.0, 3 * 3600.0]
    for _ in range(200):
        clock.advance(37)
        if rng.random() < 0.7:
            events = [finished(rng.choice(("succeeded", "failed")), at=clock.now,
                               queue=rng.uniform(0, 90), predict=rng.uniform(0.1, 30),
                               model=rng.choice(("a/x", "b/y")), deployment=None)
                      for _ in range(rng.randint(1, 5))]
            ingest(engine, clock, events)
        now = clock.now + rng.uniform(0, 20)
        with engine.connect() as conn:
            cached = latency.histograms(conn, now=now, wants=wants)
            for metric, window in wants:
                assert cached[(metric, window)] == histograms(conn, now=now, window=window,
                                                              metric=metric)
            spent = used.usage(conn, now=now, windows=windows)
            for window in windows:
                full = usage(conn, now=now, window=window)
                assert spent[window].keys() == full.keys()
                for key, value in full.items():
                    assert spent[window][key].predictions == value.predictions
                    # Each grouped read is kept in whole milliseconds (no float drift in the
                    # sliding sums): a few reads' rounding, never more.
                    assert spent[window][key].seconds == pytest.approx(value.seconds,
                                                                       abs=0.01)
