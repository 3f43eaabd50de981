"""Latency histograms packed in bucket rows: the format, and each database's addition."""

from __future__ import annotations

from sqlalchemy import Engine, text

from hookwatch.storage import packed
from hookwatch.storage.percentiles import histograms
from hookwatch.storage.rollups import HIST_BINS, latency_bin
from hookwatch.storage.writer import Writer
from tests.conftest import ManualClock
from tests.storage.conftest import event


def body(pid: str, status: str, **fields: object) -> dict[str, object]:
    return {"id": pid, "status": status, "model": "acme/sdxl", **fields}


def test_pack_and_read_back_by_metric() -> None:
    text_ = packed.pack({3: 2, HIST_BINS + 5: 1, 2 * HIST_BINS + 63: 4})
    assert text_ is not None and packed.pack({}) is None
    assert list(packed.bins(text_, "predict")) == [(3, 2)]
    assert list(packed.bins(text_, "queue")) == [(5, 1)]
    assert list(packed.bins(text_, "total")) == [(63, 4)]
    assert sorted(packed.by_metric(text_)) == [("predict", 3, 2), ("queue", 5, 1),
                                               ("total", 63, 4)]
    assert list(packed.bins(None, "predict")) == [] and packed.unpack(None) == {}


def test_histograms_sum_one_metric_per_key() -> None:
    rows = [("a", packed.pack({3: 2, HIST_BINS + 3: 9})), ("a", packed.pack({3: 1})),
            ("b", packed.pack({HIST_BINS + 1: 4})), ("c", None)]
    assert packed.histograms(rows, "predict") == {"a": {3: 3}}  # b and c: no predict samples
    assert packed.histograms(rows, "queue") == {"a": {3: 9}, "b": {1: 4}}


def test_add_sums_shared_bins_and_keeps_the_rest() -> None:
    old, new = packed.pack({1: 2, 7: 1}), packed.pack({7: 3, 9: 1})
    assert packed.unpack(packed.add(old, new)) == {"1": 2, "7": 4, "9": 1}
    assert packed.add(None, new) == new and packed.add(old, None) == old
    assert packed.add(None, None) is None


def test_the_writer_adds_histograms_in_the_database(engine: Engine, clock: ManualClock) -> None:
    """Two batches into the same minute row (on both databases): the second is added to the
    first by hookwatch_hist_add, predict and queue time apart, and read back as histograms."""
    writer = Writer(engine, clock=clock)
    for i, predict in enumerate((0.25, 0.25, 4.0)):
        doc = body(f"p{i}", "succeeded", metrics={"predict_time": predict},
                   created_at="2026-11-30T12:00:00.000Z", started_at="2026-11-30T12:00:02.000Z")
        writer.commit([event(doc, key=f"id:{i}", at=clock.now)])
    with engine.connect() as conn:
        latency = conn.execute(text(
            "SELECT latency FROM outcome_buckets WHERE resolution = 60 AND scope = 'model'"
        )).scalar_one()
        found = histograms(conn, now=clock.now, window=300, metric="predict")
        queue = histograms(conn, now=clock.now, window=300, metric="queue")
    assert dict(packed.bins(latency, "predict")) == {latency_bin(0.25): 2, latency_bin(4.0): 1}
    (scope,) = found
    assert found[scope] == {latency_bin(0.25): 2, latency_bin(4.0): 1}
    assert queue[scope] == {latency_bin(2.0): 3}


def test_no_latency_means_no_histogram(engine: Engine, clock: ManualClock) -> None:
    """A prediction without times counts its outcome and leaves `latency` NULL."""
    writer = Writer(engine, clock=clock)
    writer.commit([event(body("p0", "failed"), key="id:0", at=clock.now)])
    with engine.connect() as conn:
        rows = list(conn.execute(text("SELECT failed, latency FROM outcome_buckets")))
    assert rows and all(row == (1, None) for row in rows)
