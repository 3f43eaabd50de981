"""storage.rates over buckets written by the real writer, on SQLite and PostgreSQL."""

from __future__ import annotations

import pytest
from sqlalchemy import Engine
from sqlmodel import Session

from hookwatch.storage.rates import (
    Counts,
    history,
    latency_percentiles,
    multi_window_counts,
    resolution_for,
    stuck_counts,
    top_fingerprints,
    window_counts,
)
from tests.alerts.helpers import event, ingest, outcomes
from tests.conftest import ManualClock

DEP = ("deployment", "acme/sdxl-prod")
MODEL = ("model", "acme/sdxl")
VERSION = ("version", "acme/sdxl:v1")


def test_counts_per_window_and_scope(engine: Engine, clock: ManualClock) -> None:
    start = clock.now
    clock.now = start - 2 * 3600  # two hours ago: outside 1h, inside 3h and 8d
    outcomes(engine, clock, succeeded=5)
    clock.now = start
    outcomes(engine, clock, succeeded=3, failed=2, canceled=1)
    clock.advance(30 * 60)
    outcomes(engine, clock, failed=1)
    outcomes(engine, clock, failed=4, model="other/model", deployment=None, version=None)
    now = clock.advance(10)

    with Session(engine) as session:
        five = window_counts(session, now=now, window_seconds=300)
        hour = window_counts(session, now=now, window_seconds=3600)
        three = window_counts(session, now=now, window_seconds=3 * 3600)
        week = window_counts(session, now=now, window_seconds=8 * 86400)

    assert five[DEP] == Counts(failed=1)
    assert five[("model", "other/model")] == Counts(failed=4)
    assert ("deployment", "other/model") not in five
    assert hour[DEP] == Counts(succeeded=3, failed=3, canceled=1)
    assert hour[MODEL] == hour[DEP] == hour[VERSION]
    assert hour[DEP].error_rate == pytest.approx(0.5)  # canceled is not in the denominator
    assert hour[DEP].total == 7
    assert three[DEP] == Counts(succeeded=8, failed=3, canceled=1)
    assert week[DEP] == three[DEP]
    assert Counts(canceled=3).error_rate is None


def test_filters_and_multi_window(engine: Engine, clock: ManualClock) -> None:
    outcomes(engine, clock, failed=2)
    outcomes(engine, clock, succeeded=1, model="b", deployment="b-prod", version=None)
    now = clock.advance(5)
    with engine.connect() as conn:
        only = window_counts(conn, now=now, window_seconds=600, scope="deployment")
        named = window_counts(conn, now=now, window_seconds=600, scope="model", names=["b"])
        none = window_counts(conn, now=now, window_seconds=600, names=[])
        multi = multi_window_counts(conn, now=now, windows=[300, 3600, 6 * 3600])
    assert set(only) == {DEP, ("deployment", "b-prod")}
    assert named == {("model", "b"): Counts(succeeded=1)}
    assert none == {}
    assert multi[300.0] == multi[3600.0]
    assert multi[6 * 3600.0][MODEL] == Counts(failed=2)
    with pytest.raises(ValueError, match="unknown scope"):
        window_counts(engine.connect(), now=now, window_seconds=60, scope="region")


def test_window_edges_use_overlapping_buckets(engine: Engine, clock: ManualClock) -> None:
    clock.now = 1_795_000_040.0  # 20 s into the minute bucket starting at ..020
    outcomes(engine, clock, failed=1)
    with engine.connect() as conn:
        # 70 s later the outcome's bucket still overlaps a 60 s window ...
        assert window_counts(conn, now=clock.now + 70, window_seconds=60)[DEP].failed == 1
        # ... and once the whole bucket is older than the window, it is gone.
        assert DEP not in window_counts(conn, now=clock.now + 101, window_seconds=60)


def test_resolution_grows_with_the_window() -> None:
    assert resolution_for(300) == 60
    assert resolution_for(7200) == 60
    assert resolution_for(6 * 3600) == 3600
    assert resolution_for(7 * 86400) == 86400


def test_latency_percentiles(engine: Engine, clock: ManualClock) -> None:
    events = [event("succeeded", at=clock.now, predict_time=1.0, queue_time=0.2)
              for _ in range(90)]
    events += [event("succeeded", at=clock.now, predict_time=20.0) for _ in range(10)]
    ingest(engine, clock, events)
    with Session(engine) as session:
        predict = latency_percentiles(
            session, now=clock.now, window_seconds=3600, qs=(0.5, 0.95), scope="deployment"
        )
        queue = latency_percentiles(session, now=clock.now, window_seconds=86400, metric="queue")
    p = predict[DEP]
    assert p.count == 100
    assert p.values[0.5] == pytest.approx(1.0, rel=0.2)  # bins are ~19% wide
    assert p.values[0.95] == pytest.approx(20.0, rel=0.2)
    assert queue[DEP].count == 90
    assert queue[DEP].values[0.5] == pytest.approx(0.2, rel=0.2)
    assert set(predict) == {DEP}


def test_history_is_dense_and_zero_filled(engine: Engine, clock: ManualClock) -> None:
    start = clock.now
    clock.now = start - 5 * 3600
    outcomes(engine, clock, succeeded=2, failed=1)
    clock.now = start
    outcomes(engine, clock, failed=3)
    with Session(engine) as session:
        hourly = history(session, scope="deployment", name="acme/sdxl-prod", resolution=3600,
                         since=start - 23 * 3600, now=start)
        daily = history(session, scope="model", name="acme/sdxl", resolution=86400,
                        since=start - 89 * 86400, now=start)
        nothing = history(session, scope="model", name="nobody", resolution=3600,
                          since=start - 23 * 3600, now=start)
    assert len(hourly) == 24
    assert [p.start for p in hourly] == sorted(p.start for p in hourly)
    assert hourly[-1].counts == Counts(failed=3)
    assert hourly[-6].counts == Counts(succeeded=2, failed=1)
    assert sum(p.counts.total for p in hourly) == 6
    assert len(daily) == 90 and sum(p.counts.failed for p in daily) == 4
    assert len(nothing) == 24 and all(p.counts == Counts() for p in nothing)


def test_top_fingerprints(engine: Engine, clock: ManualClock) -> None:
    oom = "CUDA out of memory. Tried to allocate {} GiB"
    events = [event("failed", at=clock.now, error=oom.format(n)) for n in (2, 4, 8)]
    events.append(event("failed", at=clock.now, error=oom.format(1.5), model="other/m",
                        deployment=None))
    events.append(event("failed", at=clock.now, error="NaN in output"))
    events.append(event("succeeded", at=clock.now))
    old = clock.now
    clock.now = old - 7200  # counted two hours before `since`: not in the groups
    ingest(engine, clock, [event("failed", at=clock.now, error="old failure")])
    clock.now = old
    ingest(engine, clock, events)
    with Session(engine) as session:
        top = top_fingerprints(session, since=old - 60, limit=5)
        scoped = top_fingerprints(session, since=old - 60, scope="deployment",
                                  name="acme/sdxl-prod")
        version = top_fingerprints(session, since=old - 60, scope="version", name="acme/sdxl:v1")
    assert [(g.fingerprint, g.count) for g in top] == [
        ("CUDA out of memory. Tried to allocate <n> GiB", 4),
        ("NaN in output", 1),
    ]
    assert top[0].models == ["acme/sdxl", "other/m"]
    assert top[0].first_seen == old and top[0].example.startswith("CUDA out of memory")
    assert [g.count for g in scoped] == [3, 1]
    assert [g.count for g in version] == [3, 1]


def test_stuck_counts(engine: Engine, clock: ManualClock) -> None:
    start = clock.now
    ingest(engine, clock, [event("starting", at=start), event("processing", at=start)])
    clock.advance(10 * 60)
    ingest(engine, clock, [event("starting", at=clock.now)])
    done = event("starting", at=start - 1, prediction_id="finished")
    clock.now = start
    ingest(engine, clock, [done])
    clock.advance(60)
    ingest(engine, clock, [event("succeeded", at=clock.now, prediction_id="finished")])
    now = start + 16 * 60
    with engine.connect() as conn:
        stuck = stuck_counts(conn, now=now, older_than=15 * 60)
        deployments = stuck_counts(conn, now=now, older_than=15 * 60, scope="deployment")
        bounded = stuck_counts(conn, now=now, older_than=15 * 60, since=start + 1)
    assert stuck == {MODEL: 2, DEP: 2, VERSION: 2}
    assert deployments == {DEP: 2}
    assert bounded == {}

