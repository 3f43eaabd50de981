"""The async writer: a batch that cannot commit is retried event by event, so only the bad
event is refused and its batch-mates are still acknowledged."""

from __future__ import annotations

import asyncio
import dataclasses

import pytest
from sqlalchemy import Engine, text

from hookwatch.storage.engine import writer_process_config
from hookwatch.storage.writer import Writer, WriterUnavailable
from tests.conftest import ManualClock
from tests.storage.conftest import event


@pytest.mark.parametrize("in_child", [True, False], ids=["writer-process", "writer-thread"])
def test_one_bad_event_does_not_sink_its_batch(
    engine: Engine, clock: ManualClock, in_child: bool
) -> None:
    good = [event({"id": f"ok{i}", "status": "failed", "model": "m"}, key=f"id:ok{i}",
                  at=clock.now) for i in range(3)]
    # A lone surrogate cannot be encoded for either database; the receiver cleans these,
    # so this stands for any event the database refuses.
    bad = dataclasses.replace(good[0], dedup_key="id:bad", prediction_id="bad",
                              error="\ud800 unencodable")

    async def submit_together() -> list[object]:
        process = writer_process_config(engine) if in_child else None
        writer = Writer(engine, clock=clock, process=process)
        await writer.start()
        try:
            return await asyncio.gather(
                *(writer.submit(e) for e in [good[0], bad, good[1], good[2]]),
                return_exceptions=True,
            )
        finally:
            await writer.stop()

    answers = asyncio.run(submit_together())
    assert answers[0] is False and answers[2] is False and answers[3] is False
    assert isinstance(answers[1], WriterUnavailable)
    with engine.connect() as conn:
        stored = sorted(conn.execute(text("SELECT prediction_id FROM events")).scalars())
        failed = conn.execute(text(
            "SELECT sum(failed) FROM outcome_buckets WHERE resolution = 60 AND scope = 'model'"
        )).scalar_one()
    assert stored == ["ok0", "ok1", "ok2"]
    assert failed == 3
