"""Ingest tables: raw events, each prediction's current state, and outcome time buckets.

Times are unix seconds (floats): cheap to compare and bucket, identical on SQLite and PostgreSQL.
"""

from __future__ import annotations

from sqlalchemy import BigInteger, Column, Index, Integer, LargeBinary, Text
from sqlmodel import Field, SQLModel


class Event(SQLModel, table=True):
    """One accepted webhook, as received. Pruned after the retention period."""

    __tablename__ = "events"

    # 64-bit on PostgreSQL: at 1,000 webhooks/s a 32-bit id runs out in 25 days. SQLite's
    # INTEGER PRIMARY KEY is the 64-bit rowid already.
    id: int | None = Field(
        default=None,
        sa_column=Column(
            BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=True
        ),
    )
    dedup_key: str = Field(max_length=300, unique=True)
    prediction_id: str = Field(max_length=300, index=True)
    status: str = Field(max_length=40)
    source: str = Field(max_length=20)  # signed | token | reconciled
    received_at: float = Field(index=True)
    sent_at: float | None = None  # the sender's webhook-timestamp, when signed
    headers: str = Field(sa_column=Column(Text, nullable=False))
    body: bytes = Field(sa_column=Column(LargeBinary, nullable=False))


class Prediction(SQLModel, table=True):
    """A prediction's current state; moves forward only (see storage.batch)."""

    __tablename__ = "predictions"
    __table_args__ = (
        Index("ix_predictions_rank_first_seen", "rank", "first_seen_at"),
        Index("ix_predictions_status_counted", "status", "counted_at"),
    )

    id: str = Field(primary_key=True, max_length=300)
    status: str = Field(max_length=40)
    rank: int
    # Few indexes on purpose: each one is written on every webhook. Scope queries read the
    # buckets, not this table.
    model: str | None = Field(default=None, max_length=300)
    version: str | None = Field(default=None, max_length=300)
    deployment: str | None = Field(default=None, max_length=300)
    error: str | None = Field(default=None, sa_column=Column(Text))
    fingerprint: str | None = Field(default=None, sa_column=Column(Text))
    logs: str | None = Field(default=None, sa_column=Column(Text))
    created_at: float | None = None
    started_at: float | None = None
    completed_at: float | None = None
    predict_time: float | None = None
    first_seen_at: float = Field(index=True)
    updated_at: float
    event_at: float  # ordering time of the event that set the state
    event_count: int = 0
    counted_at: float | None = None
    counted_by: str | None = Field(default=None, max_length=40)
    source: str = Field(default="webhook", max_length=20)  # webhook | reconciled


class OutcomeBucket(SQLModel, table=True):
    """Terminal outcomes per scope and time bucket; what every error rate is read from."""

    __tablename__ = "outcome_buckets"
    __table_args__ = (Index("ix_outcome_buckets_scope", "scope", "name", "resolution", "start"),)

    resolution: int = Field(primary_key=True)
    start: int = Field(sa_column=Column(BigInteger, primary_key=True))  # unix seconds past 2038
    scope: str = Field(primary_key=True, max_length=20)
    name: str = Field(primary_key=True, max_length=400)
    succeeded: int = 0
    failed: int = 0
    canceled: int = 0
    aborted: int = 0
    other: int = 0
    predict_time_sum: float = 0.0
    predict_time_count: int = 0


class LatencyBucket(SQLModel, table=True):
    """Histogram counts (log-spaced bins) of predict and queue time per scope and bucket."""

    __tablename__ = "latency_buckets"

    resolution: int = Field(primary_key=True)
    start: int = Field(sa_column=Column(BigInteger, primary_key=True))  # unix seconds past 2038
    scope: str = Field(primary_key=True, max_length=20)
    name: str = Field(primary_key=True, max_length=400)
    metric: str = Field(primary_key=True, max_length=10)  # predict | queue
    bin: int = Field(primary_key=True)
    count: int = 0
