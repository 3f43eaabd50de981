"""One group-commit transaction: append events, move predictions forward, count outcomes.

Set-based SQL, one statement per table per batch, valid on SQLite (>= 3.35) and PostgreSQL:
`INSERT ... ON CONFLICT ... RETURNING` tells us, without a read-then-write race between
replicas, which events are new and which predictions this very batch made terminal.
"""

from __future__ import annotations

import dataclasses
import itertools
import operator
import os
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Protocol, TypeVar

from hookwatch.storage import packed
from hookwatch.storage.fingerprint import fingerprint
from hookwatch.storage.rollups import Counted, bucket_increments
from hookwatch.storage.tally import (
    COUNTED_COLUMNS,
    COUNTED_WIDTH,
    JOURNAL_INSERT,
    bucket_rows,
    counted_from_row,
)

R = TypeVar("R")
IDS = 512  # ids in one statement's IN list

TERMINAL_RANK = 2
STATUS_RANK = {"starting": 0, "processing": 1}
"""Any other status (succeeded, failed, canceled, aborted, or one not yet known) is terminal."""


def status_rank(status: str) -> int:
    return STATUS_RANK.get(status, TERMINAL_RANK)


@dataclass(slots=True)
class NewEvent:
    """An authenticated, parsed webhook on its way to the database."""

    dedup_key: str
    prediction_id: str
    status: str
    source: str
    received_at: float
    sent_at: float | None
    headers: str
    body: bytes
    model: str | None = None
    version: str | None = None
    deployment: str | None = None
    error: str | None = None
    logs: str | None = None
    created_at: float | None = None
    started_at: float | None = None
    completed_at: float | None = None
    predict_time: float | None = None

    @property
    def rank(self) -> int:
        return status_rank(self.status)

    @property
    def order_at(self) -> float:
        return self.sent_at if self.sent_at is not None else self.received_at

    def __reduce__(self) -> tuple[type[NewEvent], tuple[Any, ...]]:
        # Batches are pickled to the writer process; a slots dataclass's default state
        # methods cost three times this (one tuple, built in C).
        return NewEvent, _event_fields(self)


_event_fields = operator.attrgetter(*(f.name for f in dataclasses.fields(NewEvent)))


@dataclass(frozen=True, slots=True)
class BatchResult:
    duplicates: list[bool]  # per submitted event, in order
    counted: list[Counted]
    journaled: str | None = None
    """The batch id under which `counted` waits in count_journal for a tally (storage.tally),
    when the caller asked for that instead of bucket rows."""


class Cursor(Protocol):
    """The DBAPI cursor surface used here (sqlite3 and psycopg both have it)."""

    def execute(self, sql: str, params: Any = ..., /) -> Any: ...
    def executemany(self, sql: str, params: Any, /) -> Any: ...
    def fetchall(self) -> Sequence[Any]: ...


class Sql:
    """Runs driver-level SQL on a DBAPI cursor, in the driver's placeholder style.

    Driver-level, not SQLAlchemy Core: this runs for every batch on the hot path, and the
    statements are the same text on both databases apart from the placeholder.
    """

    def __init__(self, cursor: Cursor, dialect: str) -> None:
        self.cursor = cursor
        self.dialect = dialect
        self.mark = "?" if dialect == "sqlite" else "%s"

    def values(self, rows: int, cols: int) -> str:
        one = "(" + ",".join([self.mark] * cols) + ")"
        return ",".join([one] * rows)

    def run(self, sql: str, params: Sequence[Any], returning: bool = False) -> list[Any]:
        self.cursor.execute(sql, tuple(params))
        return list(self.cursor.fetchall()) if returning else []

    def by_ids(self, statement: str, ids: Sequence[Any], first: tuple[Any, ...] = (),
               returning: bool = False) -> list[Any]:
        """`statement` once per chunk of ids, its `{marks}` the chunk's placeholders, after
        the `first` parameters."""
        rows: list[Any] = []
        for chunk in _chunks(list(ids), IDS):
            rows += self.run(statement.format(marks=",".join([self.mark] * len(chunk))),
                             (*first, *chunk), returning)
        return rows

    def upsert(self, template: str, rows: list[tuple[Any, ...]], cols: int) -> None:
        """Rows through one statement whose text has `{values}` for its VALUES list.

        SQLite: one single-row statement, stepped once per row by the driver's executemany,
        all in C: 15-20% less writer CPU than multi-row VALUES with 1,000 busy scopes
        (bench/bench_batch.py), and one statement text instead of a dozen. PostgreSQL: the
        multi-row statement, one round trip and one plan per chunk.
        """
        if not rows:
            return
        if self.dialect == "sqlite":
            self.cursor.executemany(template.format(values=self.values(1, cols)), rows)
            return
        for chunk in _chunks(rows):
            self.run(template.format(values=self.values(len(chunk), cols)),
                     [v for row in chunk for v in row])


# The PostgreSQL channel a batch that counted a failure notifies, so that the leader replica's
# evaluator runs at once whichever replica ingested it (hookwatch/leader.py listens). NOTIFY is
# delivered at commit and collapses duplicates within a transaction:
# https://www.postgresql.org/docs/current/sql-notify.html. An SQL expression, so the name is
# scoped by database and schema like the advisory-lock keys (storage.migrate.advisory_key)
# without a query to learn them on the hot path; hex only, well under the 63-byte limit.
FAILED_CHANNEL = (
    "'hookwatch_failed_' || "
    "left(md5(current_database() || ':' || coalesce(current_schema(), '')), 16)"
)

# Marks the predictions a batch made terminal; unique across batches, processes and replicas.
_BATCH_PREFIX = os.urandom(6).hex()
_batch_numbers = itertools.count()


_EVENT_COLS = (
    "dedup_key", "prediction_id", "status", "source", "received_at", "sent_at", "headers", "body",
    "listed",
)
_PRED_COLS = (
    "id", "status", "rank", "model", "version", "deployment", "error", "fingerprint", "logs",
    "created_at", "started_at", "completed_at", "predict_time", "first_seen_at", "updated_at",
    "event_at", "event_count", "counted_at", "counted_by", "source", "event_ids", "signed",
)
LISTED_EVENTS = 64
"""A prediction's row lists the ids of its first events, up to this many (some 500 bytes, on
a row each event rewrites anyway); a batch that would pass it lists none of its own, and those
events are indexed by prediction id instead (tables.Event's partial index)."""
_LISTS = f"predictions.event_count + excluded.event_count <= {LISTED_EVENTS}"
# Every SET expression reads the row as it was before this statement (both databases agree).
_ADVANCE = (
    "(excluded.rank > predictions.rank OR (excluded.rank = predictions.rank"
    f" AND predictions.rank < {TERMINAL_RANK} AND excluded.event_at >= predictions.event_at))"
)
_NEWLY_TERMINAL = f"(predictions.counted_at IS NULL AND excluded.rank = {TERMINAL_RANK})"
_PRED_UPSERT_SET = ", ".join(
    [f"{c} = CASE WHEN {_ADVANCE} THEN excluded.{c} ELSE predictions.{c} END"
     for c in ("status", "rank", "error", "fingerprint", "completed_at", "predict_time",
               "event_at", "source")]
    + ["logs = CASE WHEN " + _ADVANCE
       + " THEN COALESCE(excluded.logs, predictions.logs) ELSE predictions.logs END"]
    + [f"{c} = COALESCE(excluded.{c}, predictions.{c})" for c in ("model", "version", "deployment")]
    + [f"{c} = COALESCE(predictions.{c}, excluded.{c})" for c in ("created_at", "started_at")]
    + ["updated_at = excluded.updated_at",
       "event_count = predictions.event_count + excluded.event_count",
       f"event_ids = CASE WHEN {_LISTS} THEN COALESCE(predictions.event_ids || ',', '')"
       " || excluded.event_ids ELSE predictions.event_ids END",
       "signed = (predictions.signed OR excluded.signed)"]
    + [f"{c} = CASE WHEN {_NEWLY_TERMINAL} THEN excluded.{c} ELSE predictions.{c} END"
       for c in ("counted_at", "counted_by")]
)


def _merge(events: list[NewEvent]) -> NewEvent:
    """The state a group of new events for one prediction amounts to.

    Highest rank wins; among terminal events the first to arrive wins (terminal is final);
    among others the latest by sender time. Labels and start times are filled from any event.
    """
    best = events[0]
    for ev in events[1:]:
        if ev.rank > best.rank or (
            ev.rank == best.rank < TERMINAL_RANK and ev.order_at >= best.order_at
        ):
            best = ev
    if len(events) == 1:
        return best
    merged = dataclasses.replace(best)
    for ev in events:
        for label in ("model", "version", "deployment", "created_at", "started_at"):
            if getattr(merged, label) is None:
                setattr(merged, label, getattr(ev, label))
    return merged


def kept_logs(state: NewEvent) -> str | None:
    """The logs a prediction's row keeps: only once it ended other than succeeded, where they
    explain the failure after its events are pruned. Every other state's logs are in its
    events' bodies, where the prediction page reads them (dashboard.prediction_logs); on the
    row they were a second copy of 2-8 KB with every webhook that carried them, a fifth of what
    a completed webhook wrote (bench/README.md, ninth session)."""
    return state.logs if state.rank == TERMINAL_RANK and state.status != "succeeded" else None


def commit_batch(
    cursor: Cursor, events: Sequence[NewEvent], *, now: float, dialect: str,
    journal: str | None = None,
) -> BatchResult:
    """Run inside an open transaction; the caller commits. Returns per-event duplicate flags.

    journal: the writer's owner token (storage.tally): outcomes are journaled for its tally
    rather than added to the bucket rows here."""
    sql = Sql(cursor, dialect)
    batch_id = f"{_BATCH_PREFIX}-{os.getpid()}-{next(_batch_numbers)}"
    first_index: dict[str, int] = {}
    for i, ev in enumerate(events):
        first_index.setdefault(ev.dedup_key, i)
    unique = sorted({ev.dedup_key: ev for ev in reversed(events)}.values(),
                    key=lambda e: e.dedup_key)

    event_rows = [
        (ev.dedup_key, ev.prediction_id, ev.status, ev.source, ev.received_at, ev.sent_at,
         ev.headers, ev.body, True)
        for ev in unique
    ]
    inserted: dict[str, int] = {}  # dedup key -> the new event's id
    for chunk in _chunks(event_rows):
        inserted.update(
            (row[0], row[1])
            for row in sql.run(
                f"INSERT INTO events ({','.join(_EVENT_COLS)}) VALUES "
                f"{sql.values(len(chunk), len(_EVENT_COLS))} "
                "ON CONFLICT (dedup_key) DO NOTHING RETURNING dedup_key, id",
                [v for row in chunk for v in row],
                returning=True,
            )
        )
    duplicates = [
        not (ev.dedup_key in inserted and first_index[ev.dedup_key] == i)
        for i, ev in enumerate(events)
    ]

    by_prediction: dict[str, list[NewEvent]] = {}
    for i, ev in enumerate(events):
        if not duplicates[i]:
            by_prediction.setdefault(ev.prediction_id, []).append(ev)
    if not by_prediction:
        return BatchResult(duplicates, [])

    pred_rows: list[tuple[Any, ...]] = []
    for pid in sorted(by_prediction):
        group = by_prediction[pid]
        st = _merge(group)
        terminal = st.rank == TERMINAL_RANK
        pred_rows.append((
            pid, st.status, st.rank, st.model, st.version, st.deployment, st.error,
            fingerprint(st.error) if st.error else None, kept_logs(st), st.created_at,
            st.started_at, st.completed_at, st.predict_time, now, now, st.order_at, len(group),
            now if terminal else None, batch_id if terminal else None,
            "reconciled" if st.source == "reconciled" else "webhook",
            ",".join(str(inserted[ev.dedup_key]) for ev in group)
            if len(group) <= LISTED_EVENTS else None,
            any(ev.source == "signed" for ev in group),
        ))
    rows: list[Any] = []
    for chunk in _chunks(pred_rows):
        rows.extend(sql.run(
            f"INSERT INTO predictions ({','.join(_PRED_COLS)}) VALUES "
            f"{sql.values(len(chunk), len(_PRED_COLS))} "
            f"ON CONFLICT (id) DO UPDATE SET {_PRED_UPSERT_SET} "
            f"RETURNING {COUNTED_COLUMNS}, event_count",
            [v for row in chunk for v in row],
            returning=True,
        ))
    # Events their row did not list: into the index by prediction id. This transaction
    # inserted them, so their pages are written anyway.
    sql.by_ids("UPDATE events SET listed = false WHERE id IN ({marks})",
               sorted(inserted[ev.dedup_key] for r in rows if r[COUNTED_WIDTH] > LISTED_EVENTS
                      for ev in by_prediction[r[0]]))
    counted = [counted_from_row(r) for r in rows if r[9] == batch_id]
    journaled = None
    if counted and journal is not None:
        sql.run(JOURNAL_INSERT.format(mark=sql.mark), (batch_id, journal))
        journaled = batch_id
    elif counted:
        add_to_buckets(sql, counted, now)
    if dialect == "postgresql" and any(c.status == "failed" for c in counted):
        # SQLite has one process, whose writer tells its own nudge after the commit.
        sql.run(f"SELECT pg_notify({FAILED_CHANNEL}, '')", ())
    return BatchResult(duplicates, counted, journaled)


_OUTCOME_SUMS = ("succeeded", "failed", "canceled", "aborted", "other", "predict_time_sum",
                 "predict_time_count")
_OUTCOME_UPSERT = (
    "INSERT INTO outcome_buckets (resolution, start, scope, name, "
    + ", ".join(_OUTCOME_SUMS) + ", latency) VALUES {values} "
    "ON CONFLICT (resolution, start, scope, name) DO UPDATE SET "
    + ", ".join(f"{c} = outcome_buckets.{c} + excluded.{c}" for c in _OUTCOME_SUMS)
    + f", latency = {packed.FUNCTION}(outcome_buckets.latency, excluded.latency)"
)
_BUCKET_COLUMNS = 4 + len(_OUTCOME_SUMS) + 1


def add_to_buckets(sql: Sql, counted: list[Counted], now: float) -> None:
    upsert_buckets(sql, bucket_rows(*bucket_increments(counted, now)))


def upsert_buckets(sql: Sql, rows: list[tuple[Any, ...]]) -> None:
    """Rows of storage.tally.bucket_rows, added to the buckets (the latency histograms by
    storage.packed's function)."""
    sql.upsert(_OUTCOME_UPSERT, rows, _BUCKET_COLUMNS)


def _chunks(rows: list[R], size: int = 1024) -> list[list[R]]:
    """Split rows into chunks of power-of-two lengths (at most `size`), in order.

    Each multi-row statement's text depends on its row count, and SQLite compiles every new
    text afresh (psycopg prepares only texts it has seen five times): batches of every length
    from 1 to 256 would keep a large upsert compiling on the hot path. Power-of-two chunks
    leave a dozen texts per statement, all prepared after warm-up. Chunks also stay under the
    bound-parameter limits (SQLite's 32,766, PostgreSQL's 65,535) and keep the sorted row
    order, so the lock order between replicas stays the same.
    """
    chunks: list[list[R]] = []
    start = 0
    while start < len(rows):
        length = min(size, 1 << ((len(rows) - start).bit_length() - 1))
        chunks.append(rows[start : start + length])
        start += length
    return chunks
