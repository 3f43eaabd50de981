"""Writing a tally's folded increments, and counting again what a dead writer had folded."""

from __future__ import annotations

from collections import defaultdict

from hookwatch.storage.batch import Cursor, Sql, upsert_buckets
from hookwatch.storage.rollups import Counted
from hookwatch.storage.tally import COUNTED_COLUMNS, Tally, counted_from_row


def flush(cursor: Cursor, dialect: str, tally: Tally) -> None:
    """The tally's rows and the deletion of its journal rows, inside the caller's transaction.
    The caller clears the tally once that transaction has committed."""
    if not tally:
        return
    sql = Sql(cursor, dialect)
    upsert_buckets(sql, *tally.rows())
    for start in range(0, len(tally.batches), 500):
        ids = tally.batches[start : start + 500]
        sql.run(f"DELETE FROM count_journal WHERE batch_id IN ({','.join([sql.mark] * len(ids))})",
                ids)


def recover(cursor: Cursor, dialect: str, owner: str) -> list[Counted]:
    """Count the outcomes a dead writer journaled but never wrote, inside the caller's
    transaction; what was counted.

    The DELETE comes first: it takes the write lock, so of two writers recovering one owner at
    once only the first finds its rows. Each prediction is counted at its own `counted_at`,
    the time its batch would have counted it.
    """
    sql = Sql(cursor, dialect)
    batches = [r[0] for r in sql.run(
        f"DELETE FROM count_journal WHERE owner = {sql.mark} RETURNING batch_id", (owner,),
        returning=True)]
    by_time: dict[float, list[Counted]] = defaultdict(list)
    for start in range(0, len(batches), 500):
        ids = batches[start : start + 500]
        for row in sql.run(
            f"SELECT {COUNTED_COLUMNS}, counted_at FROM predictions "
            f"WHERE counted_by IN ({','.join([sql.mark] * len(ids))})", ids, returning=True,
        ):
            by_time[row[11]].append(counted_from_row(row))
    fold = Tally()
    for at, counted in by_time.items():
        fold.add("", counted, at, now=0.0)
    upsert_buckets(sql, *fold.rows())
    return fold.counted


def owners(cursor: Cursor) -> list[str]:
    """Every writer with journal rows: the live ones too (storage.owners tells them apart)."""
    cursor.execute("SELECT DISTINCT owner FROM count_journal")
    return [r[0] for r in cursor.fetchall()]
