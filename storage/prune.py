"""Retention: raw events go after `retention_days`, minute buckets after two days.

Predictions and hourly and daily buckets stay: every error rate and history bar is read from
buckets, and a prediction row is the last word on its outcome. Deletes run in bounded chunks,
each its own short transaction, so the writer (SQLite has one) never waits long behind them.

Deleting an event does not reopen its deduplication: a signed webhook older than the signature
tolerance is refused anyway, so retention is kept at one day at least; a re-sent terminal
event finds its prediction already counted (counted_at), so it is never counted twice.
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import Engine, delete, func
from sqlmodel import col, select

from hookwatch.storage.tables import Event, OutcomeBucket

DAY = 86400.0
MIN_RETENTION_DAYS = 1
MINUTE_BUCKETS_KEPT = 2 * DAY
"""Windows up to 2 h read minute buckets (storage.rates.resolution_for); two days is margin."""
EVENT_CHUNK = 5000
BUCKET_SLICE = 3600
"""Minute buckets are deleted an hour of bucket starts at a time."""
MAX_CHUNKS = 50
"""Per table and run: 250,000 events a run, far above what a busy install receives meanwhile."""
PRUNE_INTERVAL = 600.0


@dataclass
class PruneReport:
    events: int = 0
    outcome_buckets: int = 0  # minute rows, their latency histograms with them
    more: bool = False  # a table had more to delete than one run may


def prune_old(
    engine: Engine,
    *,
    now: float,
    retention_days: float,
    chunk: int = EVENT_CHUNK,
    max_chunks: int = MAX_CHUNKS,
) -> PruneReport:
    report = PruneReport()
    events_before = now - max(retention_days, MIN_RETENTION_DAYS) * DAY
    for _ in range(max_chunks):
        oldest = select(Event.id).where(Event.received_at < events_before).limit(chunk)
        with engine.begin() as conn:
            deleted = conn.execute(delete(Event).where(col(Event.id).in_(oldest))).rowcount
        report.events += deleted
        if deleted < chunk:
            break
    else:
        report.more = True

    minutes_before = int(now - MINUTE_BUCKETS_KEPT)
    report.outcome_buckets, more = _prune_minutes(engine, before=minutes_before,
                                                  max_chunks=max_chunks)
    report.more |= more
    return report


def _prune_minutes(engine: Engine, *, before: int, max_chunks: int) -> tuple[int, bool]:
    """Delete 60-second buckets starting before `before`, oldest hour first."""
    total = 0
    for _ in range(max_chunks):
        with engine.begin() as conn:
            first = conn.execute(
                select(func.min(OutcomeBucket.start)).where(OutcomeBucket.resolution == 60)
            ).scalar_one_or_none()
            if first is None or first >= before:
                return total, False
            upper = min(before, int(first) + BUCKET_SLICE)
            total += conn.execute(
                delete(OutcomeBucket).where(col(OutcomeBucket.resolution) == 60,
                                            col(OutcomeBucket.start) < upper)
            ).rowcount
    return total, True
