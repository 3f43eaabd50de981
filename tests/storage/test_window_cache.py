"""storage.window_cache: cached sums over closed buckets equal a full read of storage.rates, on
SQLite and PostgreSQL, for the evaluator's WindowCache and the dashboard's SlidingSums and
ClosedSeries, as the clock moves on in uneven steps."""

from __future__ import annotations

import random

from sqlalchemy import Connection, Engine, text

from hookwatch.storage.rates import OUTCOME_COLUMNS, histories, multi_window_counts
from hookwatch.storage.window_cache import ClosedSeries, SlidingSums, Vector, WindowCache
from tests.alerts.helpers import outcomes
from tests.conftest import ManualClock

DEP = ("deployment", "acme/sdxl-prod")


def _minute_sums(conn: Connection, lo: int, hi: int) -> dict[tuple[str, str], Vector]:
    """What the dashboard's readings pass to SlidingSums: sums per scope over minute buckets."""
    sums = ", ".join(f"SUM({c})" for c in OUTCOME_COLUMNS)
    return {
        (row[0], row[1]): [int(v) for v in row[2:]]
        for row in conn.execute(
            text(f"SELECT scope, name, {sums} FROM outcome_buckets WHERE resolution = 60 "
                 "AND start >= :lo AND start < :hi GROUP BY scope, name"),
            {"lo": lo, "hi": hi},
        )
    }


def test_window_cache_matches_a_full_read(engine: Engine, clock: ManualClock) -> None:
    """The cache over closed buckets gives what a full scan gives, as time moves on."""
    windows = [300.0, 600.0, 3600.0, 6 * 3600.0]
    cache = WindowCache()
    start = clock.now
    steps = [7, 15, 15, 40, 61, 15, 300, 15, 3600, 15, 15, 7200, -7200, 15]
    for i, step in enumerate(steps):
        clock.advance(step)
        if i % 2 == 0:
            outcomes(engine, clock, succeeded=i % 3, failed=1 + i % 2,
                     deployment=f"d{i % 4}", model="m", version=None)
        with engine.connect() as conn:
            cached = cache.counts(conn, now=clock.now, windows=windows)
            full = multi_window_counts(conn, now=clock.now, windows=windows)
        assert cached == full, (i, clock.now - start)
    reads = cache.reads
    with engine.connect() as conn:
        cache.counts(conn, now=clock.now + 1, windows=windows)
    assert cache.reads - reads == 2  # the same closed buckets: only the open ones are read


def test_window_cache_heals_a_late_write_on_refresh(engine: Engine, clock: ManualClock) -> None:
    cache = WindowCache(refresh=600.0)
    outcomes(engine, clock, failed=1)
    with engine.connect() as conn:
        cache.counts(conn, now=clock.now + 120, windows=[3600.0])
    late = ManualClock(clock.now)  # a replica whose commit lands in a closed minute
    outcomes(engine, late, failed=5)
    with engine.connect() as conn:
        stale = cache.counts(conn, now=clock.now + 180, windows=[3600.0])
        healed = cache.counts(conn, now=clock.now + 720, windows=[3600.0])
        full = multi_window_counts(conn, now=clock.now + 720, windows=[3600.0])
    assert stale[3600.0][DEP].failed == 1
    assert healed == full and healed[3600.0][DEP].failed == 6


def test_sliding_sums_plus_open_buckets_match_storage_rates(
    engine: Engine, clock: ManualClock
) -> None:
    """Many uneven clock steps (some backwards): closed sums plus a live read of the open
    buckets equal storage.rates' window, and a step within the same buckets reads nothing."""
    rng = random.Random(3)
    spans = (300, 3600)
    sliding = {span: SlidingSums(resolution=60, span=span, grouped=_minute_sums)
               for span in spans}
    for step in range(90):
        clock.advance(rng.choice([7, 13, 41, 59, 61, 290, 610, -120]))
        if step % 3 == 0:
            outcomes(engine, clock, succeeded=rng.randrange(3), failed=1,
                     deployment=f"d{step % 3}", model="m", version=None)
        with engine.connect() as conn:
            want = multi_window_counts(conn, now=clock.now, windows=spans)
            for span, sums in sliding.items():
                closed = sums.closed(conn, clock.now)
                live = _minute_sums(conn, sums.bounds(clock.now)[1], int(clock.now) + 1)
                got: dict[tuple[str, str], list[int]] = {k: list(v) for k, v in closed.items()}
                for key, vector in live.items():
                    got[key] = [a + b for a, b in zip(got.get(key, [0] * 5), vector, strict=True)]
                expected = {k: [getattr(c, n) for n in OUTCOME_COLUMNS]
                            for k, c in want[float(span)].items()}
                assert {k: v for k, v in got.items() if any(v)} == expected, (step, span)
    calls: list[tuple[int, int]] = []

    def counted(conn: Connection, lo: int, hi: int) -> dict[tuple[str, str], Vector]:
        calls.append((lo, hi))
        return _minute_sums(conn, lo, hi)

    sums = sliding[300]
    sums.grouped = counted
    clock.advance(61)
    outcomes(engine, clock, failed=1)
    clock.advance(61)
    with engine.connect() as conn:
        before = sums.closed(conn, clock.now)
        assert before, "the minute written 61 s ago is closed"
        lo, hi = sums.lo, sums.hi
        calls.clear()
        assert sums.closed(conn, clock.now) is before and calls == []  # nothing closed
        clock.advance(60)  # one minute closes, one leaves: each read once, nothing else
        sums.closed(conn, clock.now)
    assert calls == [(hi, hi + 60), (lo, lo + 60)]


def test_closed_series_reloads_only_when_a_bucket_closes(
    engine: Engine, clock: ManualClock
) -> None:
    loads: list[tuple[int, int]] = []

    def hourly(conn: Connection, lo: int, hi: int) -> dict[tuple[str, str], list[int]]:
        loads.append((lo, hi))
        points = histories(conn, resolution=3600, since=lo, now=hi - 1) if hi > lo else {}
        return {k: [p.counts.failed for p in v] for k, v in points.items()}

    series = ClosedSeries(resolution=3600, span=86400, load=hourly)
    clock.now = 1_795_000_000.0 - 1_795_000_000.0 % 3600 + 100  # 100 s into an hour
    outcomes(engine, clock, failed=2)
    with engine.connect() as conn:
        first = series.closed(conn, clock.now)
        assert series.closed(conn, clock.now + 60) is first  # the same closed hours
        assert DEP not in first  # its hour is still open
        clock.advance(3600)  # that hour has closed (and its grace passed)
        later = series.closed(conn, clock.now)
    assert len(loads) == 2 and loads[1] == series.bounds(clock.now)
    assert later[DEP][-1] == 2
