"""Writing a tally's folded increments, and counting again what a dead writer had folded."""

from __future__ import annotations

from collections import defaultdict

from hookwatch.storage.batch import Cursor, Sql, upsert_buckets
from hookwatch.storage.rollups import Counted
from hookwatch.storage.tally import (
    COUNTED_COLUMNS,
    COUNTED_WIDTH,
    Sealed,
    Tally,
    counted_from_row,
)


def flush(cursor: Cursor, dialect: str, tally: Tally) -> None:
    """The tally's rows and the deletion of its journal rows, inside the caller's transaction.
    The caller clears the tally once that transaction has committed."""
    if not tally:
        return
    sql = Sql(cursor, dialect)
    upsert_buckets(sql, tally.rows())
    sql.by_ids("DELETE FROM count_journal WHERE batch_id IN ({marks})", tally.batches)


def write_chunk(cursor: Cursor, dialect: str, sealed: Sealed, owner: str, stop: int) -> None:
    """Rows `sealed.written` to `stop` of a sealed fold, inside the caller's transaction,
    with the record of how far it got (and, with its first chunk, which batches it holds).
    The last chunk deletes the fold's journal. The caller sets `sealed.written = stop` and
    `sealed.stored` once that transaction has committed."""
    sql = Sql(cursor, dialect)
    m = sql.mark
    if not sealed.stored:
        sql.run(f"INSERT INTO count_flushes (flush_id, owner, written) VALUES ({m}, {m}, 0)",
                (sealed.flush_id, owner))
        sql.by_ids(f"UPDATE count_journal SET flush_id = {m} WHERE batch_id IN ({{marks}})",
                   sealed.batches, first=(sealed.flush_id,))
    upsert_buckets(sql, sealed.chunk(stop))
    if stop >= sealed.total:
        sql.run(f"DELETE FROM count_journal WHERE flush_id = {m}", (sealed.flush_id,))
        sql.run(f"DELETE FROM count_flushes WHERE flush_id = {m}", (sealed.flush_id,))
    else:
        sql.run(f"UPDATE count_flushes SET written = {m} WHERE flush_id = {m}",
                (stop, sealed.flush_id))


def recover(cursor: Cursor, dialect: str, owner: str) -> list[Counted]:
    """Count the outcomes a dead writer journaled but never wrote, inside the caller's
    transaction; what was counted.

    The DELETE comes first: it takes the write lock, so of two writers recovering one owner at
    once only the first finds its rows. Each prediction is counted at its own `counted_at`,
    the time its batch would have counted it. The batches of a sealed fold are folded again
    together, which gives the same rows in the same order, and the rows its flush had written
    are skipped.
    """
    sql = Sql(cursor, dialect)
    folds: dict[str | None, list[str]] = defaultdict(list)
    for batch_id, flush_id in sql.run(
        f"DELETE FROM count_journal WHERE owner = {sql.mark} RETURNING batch_id, flush_id",
        (owner,), returning=True,
    ):
        folds[flush_id].append(batch_id)
    written: dict[str, int] = dict(sql.run(
        f"DELETE FROM count_flushes WHERE owner = {sql.mark} RETURNING flush_id, written",
        (owner,), returning=True))
    found: list[Counted] = []
    for flush_id, batches in folds.items():
        fold = _refold(sql, batches)
        sealed = Sealed.of(fold, flush_id or "")
        sealed.written = written.get(sealed.flush_id, 0)  # an unsealed fold: none
        upsert_buckets(sql, sealed.chunk(sealed.total))
        found += fold.counted
    return found


def _refold(sql: Sql, batches: list[str]) -> Tally:
    """The tally these batches had folded, from the predictions they counted."""
    by_time: dict[float, list[Counted]] = defaultdict(list)
    for row in sql.by_ids(f"SELECT {COUNTED_COLUMNS}, counted_at FROM predictions "
                          "WHERE counted_by IN ({marks})", batches, returning=True):
        by_time[row[COUNTED_WIDTH]].append(counted_from_row(row))
    fold = Tally()
    for at, counted in by_time.items():
        fold.add("", counted, at, now=0.0)
    return fold


def owners(cursor: Cursor) -> list[str]:
    """Every writer with journal rows: the live ones too (storage.owners tells them apart)."""
    cursor.execute("SELECT DISTINCT owner FROM count_journal")
    return [r[0] for r in cursor.fetchall()]
