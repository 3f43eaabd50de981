"""The group-commit transaction on SQLite and PostgreSQL: dedup, forward-only state, counters."""

from __future__ import annotations

import asyncio
import json

import orjson
import pytest
from sqlalchemy import Engine

from hookwatch.storage import packed
from hookwatch.storage.rollups import latency_bin
from hookwatch.storage.writer import Writer
from tests.conftest import FIXTURES, ManualClock, fixture_bytes
from tests.storage.conftest import event, outcome_totals, prediction, scalar, shown_logs

MODEL = "acme/sdxl"


def body(pid: str = "p1", status: str = "starting", **fields: object) -> dict[str, object]:
    return {"id": pid, "status": status, "model": MODEL, **fields}


@pytest.mark.parametrize(
    ("name", "status", "model"),
    [
        ("starting.json", "starting", None),
        ("succeeded.json", "succeeded", "replicate/hello-world"),
        ("canceled.json", "canceled", "stability-ai/sdxl"),
    ],
)
def test_replicate_fixture_shapes(
    engine: Engine, clock: ManualClock, name: str, status: str, model: str | None
) -> None:
    raw = fixture_bytes(name)
    doc = json.loads(raw)
    result = Writer(engine, clock=clock).commit([event(raw, key="id:" + name, at=clock.now)])
    assert result.duplicates == [False]
    row = prediction(engine, doc["id"])
    assert (row["status"], row["model"], row["version"]) == (status, model, doc["version"])
    assert row["event_count"] == 1
    assert row["created_at"] is not None
    terminal = status != "starting"
    assert [c.prediction_id for c in result.counted] == ([doc["id"]] if terminal else [])
    assert (row["counted_at"] is not None) is terminal
    if model is not None:
        column = ("succeeded", "failed", "canceled", "aborted").index(status)
        expected = tuple(1 if i == column else 0 for i in range(5))
        assert outcome_totals(engine)[("model", model)] == expected


def test_cog_lifecycle_with_query_labels(engine: Engine, clock: ManualClock) -> None:
    """A Cog server's unsigned bodies: labels come from the query, logs grow, then terminal."""
    query = {"model": "acme/cog", "deployment": "acme/cog-prod"}
    writer = Writer(engine, clock=clock)
    lines = (FIXTURES / "coglet-0.23-lifecycle.jsonl").read_bytes().splitlines()
    for i, line in enumerate(lines):
        writer.commit([event(line, key=f"tk:{i}", at=clock.advance(0.5), query=query,
                             source="token")])
    docs = [orjson.loads(line) for line in lines]
    for pid in ("p1", "p2"):
        mine = [d for d in docs if d["id"] == pid]
        row = prediction(engine, pid)
        assert row["status"] == mine[-1]["status"]
        assert row["event_count"] == len(mine)
        assert shown_logs(engine, pid) == mine[-1]["logs"]
        # The row keeps a failed prediction's logs; a succeeded one's stay in its events.
        assert row["logs"] == (mine[-1]["logs"] if row["status"] == "failed" else None)
        assert (row["model"], row["deployment"]) == ("acme/cog", "acme/cog-prod")
    assert prediction(engine, "p2")["error"].endswith("RuntimeError: boom")
    assert outcome_totals(engine)[("deployment", "acme/cog-prod")] == (1, 1, 0, 0, 0)
    assert outcome_totals(engine)[("model", "acme/cog")] == (1, 1, 0, 0, 0)

    start = fixture_bytes("cog-0.16-start.json")
    writer.commit([event(start, key="tk:start", at=clock.now, query={"model": "acme/cog"})])
    # An older Cog's first event for a prediction that already finished changes nothing.
    again = prediction(engine, "p1")
    assert again["status"] == "succeeded"
    assert again["event_count"] == len([d for d in docs if d["id"] == "p1"]) + 1
    assert again["started_at"] is not None


def test_duplicates_within_and_across_batches(engine: Engine, clock: ManualClock) -> None:
    writer = Writer(engine, clock=clock)
    first = event(body(), key="id:msg_1", at=clock.now)
    same = event(body(), key="id:msg_1", at=clock.now)
    other = event(body(status="processing"), key="id:msg_2", at=clock.now)
    assert writer.commit([first, same, other]).duplicates == [False, True, False]
    assert writer.commit([same, other]).duplicates == [True, True]
    assert scalar(engine, "SELECT count(*) FROM events") == 2
    assert prediction(engine, "p1")["event_count"] == 2


def test_terminal_then_late_processing_stays_terminal(engine: Engine, clock: ManualClock) -> None:
    writer = Writer(engine, clock=clock)
    t = clock.now
    done = body(status="succeeded", logs="all done", metrics={"predict_time": 1.5})
    writer.commit([event(done, key="id:done", at=t, sent_at=t)])
    late = body(status="processing", logs="step 1", deployment="acme/prod")
    result = writer.commit([event(late, key="id:late", at=t + 1, sent_at=t + 5)])
    assert result.counted == []
    row = prediction(engine, "p1")
    assert (row["status"], row["predict_time"]) == ("succeeded", 1.5)
    assert shown_logs(engine, "p1") == "all done"
    assert row["deployment"] == "acme/prod"  # a label is still filled in from any event
    assert row["event_count"] == 2
    assert outcome_totals(engine)[("model", MODEL)] == (1, 0, 0, 0, 0)


def test_older_event_never_overwrites_newer(engine: Engine, clock: ManualClock) -> None:
    writer = Writer(engine, clock=clock)
    t = clock.now
    writer.commit([event(body(status="processing", logs="step 2"), key="id:b", at=t, sent_at=t)])
    writer.commit([
        event(body(status="processing", logs="step 1"), key="id:a", at=t + 1, sent_at=t - 1),
        event(body(status="starting"), key="id:s", at=t + 1, sent_at=t - 2),
    ])
    row = prediction(engine, "p1")
    assert (row["status"], row["event_count"]) == ("processing", 3)
    assert shown_logs(engine, "p1") == "step 2"


@pytest.mark.parametrize("together", [False, True], ids=["two-batches", "one-batch"])
def test_two_terminal_events_first_wins_counted_once(
    engine: Engine, clock: ManualClock, together: bool
) -> None:
    writer = Writer(engine, clock=clock)
    failed = event(body(status="failed", error="CUDA out of memory"), key="id:f", at=clock.now)
    ok = event(body(status="succeeded"), key="id:s", at=clock.now)
    if together:
        counted = writer.commit([failed, ok]).counted
    else:
        counted = writer.commit([failed]).counted + writer.commit([ok]).counted
    assert [(c.prediction_id, c.status) for c in counted] == [("p1", "failed")]
    row = prediction(engine, "p1")
    assert (row["status"], row["error"], row["event_count"]) == ("failed", "CUDA out of memory", 2)
    assert row["fingerprint"]
    assert outcome_totals(engine)[("model", MODEL)] == (0, 1, 0, 0, 0)


def test_counters_once_per_prediction_in_every_scope(engine: Engine, clock: ManualClock) -> None:
    writer = Writer(engine, clock=clock)
    labels = {"deployment": "acme/prod", "version": "v1"}
    events = [
        event(body(f"p{i}", status, **labels, metrics={"predict_time": 0.25}), key=f"id:{i}",
              at=clock.now)
        for i, status in enumerate(["succeeded", "failed", "aborted", "canceled", "weird"])
    ]
    counted = writer.commit(events).counted
    assert len(counted) == 5
    writer.commit(events)  # every event again: all duplicates, nothing counted twice
    for resolution in (60, 3600, 86400):
        totals = outcome_totals(engine, resolution=resolution)
        for scope in (("model", MODEL), ("deployment", "acme/prod"), ("version", f"{MODEL}:v1")):
            assert totals[scope] == (1, 1, 1, 1, 1), (resolution, scope)
    assert scalar(engine, "SELECT sum(predict_time_count) FROM outcome_buckets "
                          "WHERE resolution = 60 AND scope = 'model'") == 5
    # Packed (storage.packed): predict time's bins are indexes 0-63, all 0.25 s here.
    latency = scalar(engine, "SELECT latency FROM outcome_buckets WHERE resolution = 60 "
                             "AND scope = 'deployment'")
    assert packed.unpack(latency) == {str(latency_bin(0.25)): 5}


def test_batch_over_the_parameter_limits(engine: Engine, clock: ManualClock) -> None:
    """3,400 predictions (68,000 upsert parameters, over PostgreSQL's 65,535) and 1,203 bucket
    rows in one batch: every statement is chunked."""
    n = 3400
    events = [
        event(body(f"p{i}", "succeeded", deployment=f"acme/d{i % 400}"), key=f"id:{i}",
              at=clock.now)
        for i in range(n)
    ]
    result = Writer(engine, clock=clock).commit(events)
    assert len(result.counted) == n
    assert result.duplicates == [False] * n
    assert scalar(engine, "SELECT count(*) FROM predictions") == n
    assert scalar(engine, "SELECT count(*) FROM outcome_buckets") == 3 * 401
    assert scalar(engine, "SELECT sum(succeeded) FROM outcome_buckets "
                          "WHERE scope = 'deployment' AND resolution = 3600") == n


def test_async_writer_group_commits(engine: Engine, clock: ManualClock) -> None:
    """Concurrent submits share transactions, and each learns whether it was a duplicate."""

    async def scenario() -> list[bool]:
        writer = Writer(engine, clock=clock, batch_max=64)
        await writer.start()
        try:
            events = [event(body(f"p{i % 50}", "processing"), key=f"id:{i % 150}", at=clock.now)
                      for i in range(200)]
            return await asyncio.gather(*(writer.submit(e) for e in events))
        finally:
            await writer.stop()
            batches.append(writer.batches)

    batches: list[int] = []
    duplicates = asyncio.run(scenario())
    assert batches[0] < 200
    assert duplicates.count(False) == 150
    assert scalar(engine, "SELECT count(*) FROM events") == 150
    assert scalar(engine, "SELECT sum(event_count) FROM predictions") == 150


@pytest.mark.parametrize(("status", "kept"), [
    ("processing", False), ("succeeded", False), ("failed", True), ("canceled", True),
    ("aborted", True),
])
def test_the_row_keeps_logs_only_once_a_prediction_ended_other_than_succeeded(
    engine: Engine, clock: ManualClock, status: str, kept: bool
) -> None:
    """The events hold every body whole; the row's copy of the logs is for a failure to be
    explained after its events are pruned (storage.batch.kept_logs)."""
    writer = Writer(engine, clock=clock)
    writer.commit([event(body(status=status, logs="line 1\nline 2\n"), key="id:1",
                         at=clock.now)])
    assert prediction(engine, "p1")["logs"] == ("line 1\nline 2\n" if kept else None)
    assert shown_logs(engine, "p1") == "line 1\nline 2\n"


def test_a_terminal_event_without_logs_shows_the_last_ones_sent(
    engine: Engine, clock: ManualClock
) -> None:
    writer = Writer(engine, clock=clock)
    t = clock.now
    writer.commit([event(body(status="processing", logs="step 1\n"), key="id:a", at=t,
                         sent_at=t)])
    writer.commit([event(body(status="processing", logs="step 1\nstep 2\n"), key="id:b",
                         at=t + 1, sent_at=t + 1)])
    writer.commit([event(body(status="failed", error="boom"), key="id:c", at=t + 2,
                         sent_at=t + 2)])
    writer.commit([event(body(status="succeeded", logs="a late second terminal"),
                         key="id:d", at=t + 3, sent_at=t + 3)])
    assert prediction(engine, "p1")["status"] == "failed"
    assert shown_logs(engine, "p1") == "step 1\nstep 2\n"
