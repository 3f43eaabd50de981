"""The dashboard's cached bucket reads agree with storage.rates, as the clock moves on."""

from __future__ import annotations

import random

import pytest
from sqlalchemy import Engine

from hookwatch.dashboard.failures import RecentFailures, recent_failures
from hookwatch.dashboard.readings import HISTORY_DAYS, Readings
from hookwatch.storage.rates import histories, latency_percentiles, multi_window_counts
from tests.alerts.helpers import event, ingest
from tests.conftest import ManualClock

WINDOWS = {"5m": 300.0, "1h": 3600.0, "24h": 86400.0}


@pytest.fixture
def engine(sqlite_engine: Engine) -> Engine:
    return sqlite_engine  # these readings are checked on SQLite only


def _traffic(engine: Engine, clock: ManualClock, rng: random.Random, scopes: int) -> None:
    events = []
    for _ in range(rng.randrange(1, 6)):
        n = rng.randrange(scopes)
        status = rng.choice(["succeeded", "succeeded", "failed", "canceled", "aborted"])
        events.append(event(
            status, at=clock.now, model=f"acme/m{n}", deployment=f"acme/d{n % 3}",
            version=f"v{n % 2}", error="boom" if status == "failed" else None,
            predict_time=rng.uniform(0.05, 30), queue_time=rng.uniform(0, 5),
        ))
    ingest(engine, clock, events)


def test_windows_match_the_alert_engine_while_time_passes(
    engine: Engine, clock: ManualClock
) -> None:
    """Random traffic over ~30 h with uneven steps: after every step each scope's 5m, 1h and
    24h counts equal storage.rates' (the caches add and drop closed buckets correctly)."""
    rng = random.Random(5)
    readings = Readings()
    for step in range(260):
        clock.advance(rng.choice([7, 13, 41, 59, 61, 290, 610, 1800]))
        _traffic(engine, clock, rng, scopes=6)
        if step % 5:
            continue
        with engine.connect() as conn:
            got = readings.read(conn, now=clock.now)
            want = multi_window_counts(conn, now=clock.now, windows=WINDOWS.values())
        for label, seconds in WINDOWS.items():
            expected = {k: c.as_dict() for k, c in want[seconds].items()}
            actual = {
                k: {c: v for c, v in r.window(label).as_dict().items()
                    if c not in ("total", "error_rate")}
                for k, r in got.items() if r.window(label).total
            }
            assert actual == expected, (step, label)


def test_sparkline_and_history_match_bucket_histories(engine: Engine, clock: ManualClock) -> None:
    rng = random.Random(9)
    readings = Readings()
    for _ in range(120):
        clock.advance(rng.choice([600, 3600, 7200, 86400 / 2]))
        _traffic(engine, clock, rng, scopes=3)
        with engine.connect() as conn:
            readings.read(conn, now=clock.now)  # warm the caches along the way
    with engine.connect() as conn:
        got = readings.read(conn, now=clock.now)
        days = histories(conn, resolution=86400, since=clock.now - (HISTORY_DAYS - 1) * 86400,
                         now=clock.now)
        hours = histories(conn, resolution=3600, since=clock.now - 23 * 3600, now=clock.now)
    for key, points in days.items():
        want = [(p.counts.succeeded, p.counts.failed) for p in points]
        have = [(d.succeeded, d.failed) if d else (0, 0) for d in got[key].daily]
        assert have == want, key
    for key, points in hours.items():
        want_rates = [p.counts.error_rate for p in points]
        assert list(got[key].spark) == want_rates, key


def test_latency_percentiles_cover_the_last_hour_to_the_last_closed_minute(
    engine: Engine, clock: ManualClock
) -> None:
    clock.now = 1_795_000_040.0  # 20 s into a minute
    ingest(engine, clock, [event("succeeded", at=clock.now, predict_time=2.0, queue_time=0.5)
                           for _ in range(10)])
    readings = Readings()
    with engine.connect() as conn:
        assert readings.read(conn, now=clock.now)[("model", "acme/sdxl")].latency == (
            None, None, None, None)  # the minute is still open
        clock.advance(60)  # that minute is closed (and past the grace)
        latency = readings.read(conn, now=clock.now)[("model", "acme/sdxl")].latency
        want = latency_percentiles(conn, now=clock.now, window_seconds=3600)
    p = want[("model", "acme/sdxl")]
    assert latency[0] == p.values[0.5] and latency[1] == p.values[0.95]
    assert latency[0] is not None and 1.4 < latency[0] < 2.9  # a bin around 2 s
    assert latency[2] is not None and 0.35 < latency[2] < 0.72


def test_failures_group_by_fingerprint_with_models_and_an_example(
    engine: Engine, clock: ManualClock
) -> None:
    oom = "CUDA out of memory. Tried to allocate {} GiB"
    ingest(engine, clock, [
        event("failed", at=clock.now, model="acme/a", error=oom.format(2)),
        event("failed", at=clock.now, model="acme/b", error=oom.format(4)),
    ])
    clock.advance(30)
    ingest(engine, clock, [
        event("failed", at=clock.now, model="acme/a", error=oom.format(8),
              prediction_id="latest-oom"),
        event("failed", at=clock.now, model="acme/c", error="NaN in output"),
        event("succeeded", at=clock.now, model="acme/c"),
    ])
    with engine.connect() as conn:
        groups = recent_failures(conn, now=clock.now)
        assert recent_failures(conn, now=clock.now + 86400 + 60) == []
    top = groups[0]
    assert top.fingerprint == "CUDA out of memory. Tried to allocate <n> GiB"
    assert (top.count, top.models) == (3, ["acme/a", "acme/b"])
    assert top.last_seen - top.first_seen == 30
    assert top.example_id == "latest-oom" and top.example_error == oom.format(8)
    assert [(g.fingerprint, g.count) for g in groups[1:]] == [("NaN in output", 1)]


def test_failure_groups_are_reused_until_a_failure_arrives_or_leaves(
    engine: Engine, clock: ManualClock
) -> None:
    cache = RecentFailures()
    ingest(engine, clock, [event("failed", at=clock.now, error="boom 1")])
    with engine.connect() as conn:
        first = cache.read(conn, now=clock.now)
        assert [g.count for g in first] == [1]
        clock.advance(60)
        assert cache.read(conn, now=clock.now) is first  # nothing new: the same groups
    ingest(engine, clock, [event("failed", at=clock.now, error="boom 2")])
    with engine.connect() as conn:
        assert [g.count for g in cache.read(conn, now=clock.now)] == [2]
        clock.advance(86400 - 30)  # the first failure leaves the 24 h window
        assert [g.count for g in cache.read(conn, now=clock.now)] == [1]
