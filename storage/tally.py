"""Bucket increments folded in the writer process's memory and written a few times a second.

A terminal webhook adds to nine bucket rows (three resolutions of each scope, the latency bins
packed in them: storage.packed). Written with every batch, bucket rows were most of what a
commit wrote to the WAL (bench/README.md). Under load the writer process folds them here
instead, so each row is written once per flush, whatever the number of events in it.

Nothing acknowledged can be lost this way. The batch that counts a prediction marks it
(`predictions.counted_by`) and writes one `count_journal` row, in the transaction that makes it
terminal. Once due, a fold is sealed (`Sealed`): its journal rows are given its flush id, and
each round then writes the rows of its next few scopes (about CHUNK_ROWS), in the order of
their names, with a `count_flushes` row saying how many scopes are written; the transaction
of the last chunk deletes its journal rows. A trickle of webhooks writes everything with its
batch; a pause in the pipe seals the tally and writes chunks until a batch comes. Journal
rows left by a writer that died are counted again from the predictions they name
(storage.journal.recover), less the scopes of a sealed fold already written, by the next
writer to start: the buckets end up exact either way.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from hookwatch.storage.packed import pack
from hookwatch.storage.rollups import (
    BucketKey,
    Counted,
    PackedCounts,
    ScopeFold,
    ScopeKey,
    count_minutes,
    spread,
)

FLUSH_EVERY = 0.5
"""Seconds a fold may wait before it is written, while batches keep coming (an idle writer
writes at once): bucket readers, the evaluator first, lag the webhooks by at most this."""
IDLE_FLUSH = 0.01
"""Seconds without a batch after which the writer writes its fold on its own."""
FLUSH_ROWS = 20_000
"""A fold of this many minute rows is due at once (some 60,000 bucket rows, 10 MB of Python
objects)."""
SETTLE_KEYS = 300
"""A fold of at most this many keys (about CHUNK_ROWS rows) is written whole with a batch that
settles it; a larger one is sealed and written in chunks like any other."""
CHUNK_ROWS = 1_000
"""Bucket rows a round writes of a sealed fold (about 5 ms on SQLite): over 1,000 models a
0.5 s fold is 50,000 rows, and sealed and written at once it held every connection for
50-200 ms (bench/README.md)."""

JOURNAL_INSERT = "INSERT INTO count_journal (batch_id, owner) VALUES ({mark}, {mark})"

# The columns storage.batch reads back from an upserted prediction, in Counted's order.
COUNTED_COLUMNS = ("id, status, model, deployment, version, predict_time, created_at, "
                   "started_at, error, counted_by, completed_at")
COUNTED_WIDTH = COUNTED_COLUMNS.count(",") + 1
"""The index of a column selected after COUNTED_COLUMNS."""


def counted_from_row(r: Any) -> Counted:
    """A prediction row in COUNTED_COLUMNS' order as the outcome it counts."""
    return Counted(
        prediction_id=r[0], status=r[1], model=r[2], deployment=r[3], version=r[4],
        predict_time=r[5],
        queue_time=(r[7] - r[6]) if r[6] is not None and r[7] is not None else None,
        error=r[8],
        total_time=(r[10] - r[6]) if r[6] is not None and r[10] is not None else None,
    )


def bucket_rows(outcomes: dict[BucketKey, list[float]],
                latency: dict[BucketKey, PackedCounts]) -> list[tuple[Any, ...]]:
    """Upsert rows, the key's columns, the outcome sums and the packed histogram, in key order
    (a fixed order keeps concurrent replicas free of deadlocks)."""
    return [(*key, *outcomes[key], pack(latency.get(key, {}))) for key in sorted(outcomes)]


@dataclass
class Tally:
    """Committed outcomes whose bucket increments are not written yet, folded per scope and
    minute (the hour and day rows are spread from them when written). `since` is the
    monotonic time of the oldest (None when empty); `keys` counts minute keys."""

    scopes: dict[ScopeKey, ScopeFold] = field(default_factory=dict)
    keys: int = 0
    batches: list[str] = field(default_factory=list)  # their count_journal rows
    counted: list[Counted] = field(default_factory=list)
    since: float | None = None

    def __bool__(self) -> bool:
        return bool(self.batches)

    def add(self, batch_id: str, counted: list[Counted], at: float, *, now: float) -> None:
        """A committed batch's outcomes, counted at `at` (its commit time)."""
        self.keys += count_minutes(counted, at, self.scopes)
        self.batches.append(batch_id)
        self.counted.extend(counted)
        if self.since is None:
            self.since = now

    def due_in(self, now: float) -> float | None:
        """Seconds until this fold must be written; None when there is nothing to write."""
        if self.since is None:
            return None
        if self.keys >= FLUSH_ROWS:
            return 0.0
        return max(0.0, self.since + FLUSH_EVERY - now)

    def rows(self, names: list[ScopeKey] | None = None) -> list[tuple[Any, ...]]:
        """Bucket rows of these scopes (default: all) for the upsert, in the fixed key order."""
        scopes = self.scopes
        keys = scopes if names is None else names
        return bucket_rows(*spread((key, scopes[key]) for key in keys))


@dataclass
class Sealed:
    """A due tally written a few scopes a round, in the order of their names (a sort of
    names, not of rows: sealing costs a few ms where sorting 50,000 rows cost 50-100, with
    every connection waiting). `written` scopes are in the buckets; `stored`: its flush row
    and its journal rows' flush id are committed (by its first chunk's transaction)."""

    flush_id: str
    tally: Tally
    names: list[ScopeKey]
    written: int = 0
    stored: bool = False

    @classmethod
    def of(cls, tally: Tally, flush_id: str) -> Sealed:
        return cls(flush_id, tally, sorted(tally.scopes))

    @property
    def total(self) -> int:
        return len(self.names)

    @property
    def batches(self) -> list[str]:
        return self.tally.batches

    @property
    def counted(self) -> list[Counted]:
        return self.tally.counted

    def next_stop(self, rows: int) -> int:
        """Where a chunk of about `rows` bucket rows from `written` ends."""
        stop, budget = self.written, 0
        while stop < len(self.names) and budget < rows:
            budget += self.tally.scopes[self.names[stop]].rows()
            stop += 1
        return stop

    def chunk(self, stop: int) -> list[tuple[Any, ...]]:
        """The rows of scopes `written` to `stop`."""
        return self.tally.rows(self.names[self.written:stop])
