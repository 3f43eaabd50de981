"""Bucket increments folded in the writer process's memory and written a few times a second.

A terminal webhook adds to some twenty bucket rows (three resolutions, each scope, each latency
bin). Written with every batch, those rows were most of what a commit wrote to the WAL: 8 pages
per event over 20 models, 19 over 1,000 (bench/README.md). Under load the writer process folds
them here instead, so each row is written once per flush, whatever the number of events in it.

Nothing acknowledged can be lost this way. The batch that counts a prediction marks it
(`predictions.counted_by`) and writes one `count_journal` row, in the transaction that makes it
terminal; a flush writes the folded increments and deletes those journal rows in one
transaction. Journal rows left by a writer that died are counted again from the predictions
they name (`recover`), by the next writer to start: the buckets end up exact either way.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from hookwatch.storage.rollups import Counted, HistKey, MinuteKey, count_minutes, spread

FLUSH_EVERY = 0.5
"""Seconds a fold may wait before it is written, while batches keep coming (an idle writer
writes at once): bucket readers, the evaluator first, lag the webhooks by at most this."""
IDLE_FLUSH = 0.01
"""Seconds without a batch after which the writer writes its fold on its own."""
FLUSH_ROWS = 20_000
"""A fold of this many minute rows is written at once (some 60,000 bucket rows, 10 MB of
Python objects)."""

JOURNAL_INSERT = "INSERT INTO count_journal (batch_id, owner) VALUES ({mark}, {mark})"

# The columns storage.batch reads back from an upserted prediction, in Counted's order.
COUNTED_COLUMNS = ("id, status, model, deployment, version, predict_time, created_at, "
                   "started_at, error, counted_by, completed_at")


def counted_from_row(r: Any) -> Counted:
    """A prediction row in COUNTED_COLUMNS' order as the outcome it counts."""
    return Counted(
        prediction_id=r[0], status=r[1], model=r[2], deployment=r[3], version=r[4],
        predict_time=r[5],
        queue_time=(r[7] - r[6]) if r[6] is not None and r[7] is not None else None,
        error=r[8],
        total_time=(r[10] - r[6]) if r[6] is not None and r[10] is not None else None,
    )


@dataclass
class Tally:
    """Committed outcomes whose bucket increments are not written yet, folded per minute (the
    hour and day rows are spread from them when written). `since` is the monotonic time of
    the oldest (None when empty)."""

    minutes: dict[MinuteKey, list[float]] = field(default_factory=dict)
    hist: dict[HistKey, int] = field(default_factory=dict)
    batches: list[str] = field(default_factory=list)  # their count_journal rows
    counted: list[Counted] = field(default_factory=list)
    since: float | None = None

    def __bool__(self) -> bool:
        return bool(self.batches)

    def add(self, batch_id: str, counted: list[Counted], at: float, *, now: float) -> None:
        """A committed batch's outcomes, counted at `at` (its commit time)."""
        count_minutes(counted, at, self.minutes, self.hist)
        self.batches.append(batch_id)
        self.counted.extend(counted)
        if self.since is None:
            self.since = now

    def due_in(self, now: float) -> float | None:
        """Seconds until this fold must be written; None when there is nothing to write."""
        if self.since is None:
            return None
        if len(self.minutes) + len(self.hist) >= FLUSH_ROWS:
            return 0.0
        return max(0.0, self.since + FLUSH_EVERY - now)

    def rows(self) -> tuple[list[tuple[Any, ...]], list[tuple[Any, ...]]]:
        """Outcome and latency rows for the bucket upserts, in the fixed key order."""
        outcomes, latency = spread(self.minutes, self.hist)
        return ([(*k, *outcomes[k]) for k in sorted(outcomes)],
                [(*k, latency[k]) for k in sorted(latency)])
