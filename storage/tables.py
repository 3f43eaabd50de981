"""Every table: ingest (events, predictions, buckets), alerts, the outbox, the reconciler.

Ingest: raw events, each prediction's current state, and outcome time buckets.

Times are unix seconds (floats): cheap to compare and bucket, identical on SQLite and PostgreSQL.
"""

from __future__ import annotations

from sqlalchemy import (
    BigInteger,
    Column,
    Index,
    Integer,
    LargeBinary,
    Text,
    UniqueConstraint,
    false,
    text,
)
from sqlmodel import Field, SQLModel


class Event(SQLModel, table=True):
    """One accepted webhook, as received. Pruned after the retention period."""

    __tablename__ = "events"
    # A prediction's events are found through the id list on its row (predictions.event_ids);
    # only those left off it are indexed by prediction. An index on every event's random
    # prediction id put each event in a leaf of its own: a fifth of what a webhook wrote
    # (bench/README.md, tenth session).
    __table_args__ = (
        Index("ix_events_unlisted_prediction", "prediction_id",
              sqlite_where=text("listed = 0"), postgresql_where=text("NOT listed")),
    )

    # 64-bit on PostgreSQL: at 1,000 webhooks/s a 32-bit id runs out in 25 days. SQLite's
    # INTEGER PRIMARY KEY is the 64-bit rowid already.
    id: int | None = Field(
        default=None,
        sa_column=Column(
            BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=True
        ),
    )
    dedup_key: str = Field(max_length=300, unique=True)
    prediction_id: str = Field(max_length=300)
    listed: bool = Field(default=False, sa_column_kwargs={"server_default": false()})
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
    # Only for predictions that ended other than succeeded (storage.batch.kept_logs).
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
    # Ids of the events on this row, comma-separated, up to storage.batch.LISTED_EVENTS.
    event_ids: str | None = Field(default=None, sa_column=Column(Text))
    # Any of its events signed, i.e. sent by Replicate: the reconciler asks Replicate's API
    # about these only.
    signed: bool = Field(default=False, sa_column_kwargs={"server_default": false()})


class OutcomeBucket(SQLModel, table=True):
    """Terminal outcomes per scope and time bucket, what every error rate is read from, and
    their latency histograms."""

    __tablename__ = "outcome_buckets"
    # WITHOUT ROWID on SQLite: the key is the table (migration 0005).
    __table_args__ = (Index("ix_outcome_buckets_scope", "scope", "name", "resolution", "start"),
                      {"sqlite_with_rowid": False})

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
    # Latency bins of every metric (minute and hour rows; storage.packed).
    latency: str | None = Field(default=None, sa_column=Column(Text, nullable=True))


class CountJournal(SQLModel, table=True):
    """A batch whose outcomes wait in a writer process's tally (storage.tally)."""

    __tablename__ = "count_journal"

    batch_id: str = Field(primary_key=True, max_length=40)
    owner: str = Field(max_length=40)  # the writer's token (storage.owners)
    flush_id: str | None = Field(default=None, max_length=40)  # its fold, once being written


class CountFlush(SQLModel, table=True):
    """A fold being written in chunks (storage.tally.Sealed): how many of its rows are in."""

    __tablename__ = "count_flushes"

    flush_id: str = Field(primary_key=True, max_length=40)
    owner: str = Field(max_length=40)
    written: int


# --- alerts (alerts/): one row per instance, its history, silences, the evaluator lock

class Alert(SQLModel, table=True):
    """The current state of one alert instance; rows are kept and reused across episodes.

    An episode runs from pending/firing to resolved; the notification bookkeeping
    (`notified`, `last_notified_at`, acknowledgement) belongs to the current episode.
    """

    __tablename__ = "alerts"
    __table_args__ = (UniqueConstraint("rule", "scope", "name", name="uq_alerts_instance"),)

    id: int | None = Field(default=None, primary_key=True)
    key: str = Field(max_length=64, unique=True)  # stable: PagerDuty's dedup_key
    rule: str = Field(max_length=100)
    rule_kind: str = Field(max_length=20)
    severity: str = Field(max_length=20)
    scope: str = Field(max_length=20)
    name: str = Field(max_length=400)
    state: str = Field(max_length=20, index=True)  # inactive | pending | firing | resolved
    since: float  # when the current state began
    episode: int = 0  # +1 each time the alert goes pending (or straight to firing)
    fired_at: float | None = None
    clear_since: float | None = None  # firing, but the condition has been clear since then
    resolved_at: float | None = None
    value: float | None = None
    threshold: float | None = None
    summary: str = Field(default="", sa_column=Column(Text, nullable=False))
    counts: str = Field(default="{}", sa_column=Column(Text, nullable=False))  # JSON
    muted_by: str | None = Field(default=None, max_length=200)  # "silence 3" / "inhibited by ..."
    notified: bool = False  # a trigger went out (not suppressed) this episode
    last_notified_at: float | None = None
    acked_by: str | None = Field(default=None, max_length=200)
    acked_at: float | None = None
    ack_comment: str | None = Field(default=None, sa_column=Column(Text))
    evaluated_at: float


class AlertTransition(SQLModel, table=True):
    """History: one row per state change, written with the change."""

    __tablename__ = "alert_transitions"
    __table_args__ = (Index("ix_alert_transitions_alert_at", "alert_id", "at"),)

    id: int | None = Field(default=None, primary_key=True)
    alert_id: int
    at: float = Field(index=True)
    from_state: str = Field(max_length=20)
    to_state: str = Field(max_length=20)
    value: float | None = None
    note: str = Field(default="", sa_column=Column(Text, nullable=False))


class Silence(SQLModel, table=True):
    """Mutes notifications of matching alerts from starts_at until ends_at; never deleted."""

    __tablename__ = "silences"

    id: int | None = Field(default=None, primary_key=True)
    rule: str = Field(default="*", max_length=200)  # glob on the rule name
    scope: str = Field(default="*", max_length=20)  # model | deployment | version | *
    name: str = Field(default="*", max_length=400)  # glob on the scope's name
    starts_at: float
    ends_at: float = Field(index=True)
    created_by: str = Field(max_length=200)
    comment: str = Field(sa_column=Column(Text, nullable=False))
    created_at: float
    expired_at: float | None = None  # set when ended early (DELETE)
    expired_by: str | None = Field(default=None, max_length=200)


class EvaluatorLock(SQLModel, table=True):
    """One row, updated first in every evaluation and acknowledgement transaction.

    The row lock serialises evaluators across processes and replicas on both databases, so two
    of them never decide the same transition (and never write its notifications twice).
    """

    __tablename__ = "alert_evaluator"

    id: int = Field(default=1, primary_key=True)
    evaluated_at: float = 0.0
    runs: int = 0


class ErrorSighting(SQLModel, table=True):
    """One error fingerprint on one scope, for one new_error rule (alerts.new_error.Sighting):
    first and last seen, and its current appearance (the first failure after a quiet gap)."""

    __tablename__ = "error_sightings"
    __table_args__ = (Index("ix_error_sightings_rule_appeared", "rule", "appeared_at"),)

    rule: str = Field(primary_key=True, max_length=100)
    scope: str = Field(primary_key=True, max_length=20)
    name: str = Field(primary_key=True, max_length=400)
    fingerprint_key: str = Field(primary_key=True, max_length=40)
    fingerprint: str = Field(sa_column=Column(Text, nullable=False))
    first_seen: float
    appeared_at: float
    last_seen: float
    count: int = 0
    prediction_id: str = Field(max_length=300)
    version: str | None = Field(default=None, max_length=300)
    example: str = Field(default="", sa_column=Column(Text, nullable=False))


class SightingCursor(SQLModel, table=True):
    """How far each new_error rule has read the counted failures."""

    __tablename__ = "error_sighting_cursors"

    rule: str = Field(primary_key=True, max_length=100)
    through: float


# --- the outbox (alerts/ writes it, notifiers/ sends it)

class Notification(SQLModel, table=True):
    """Written in the same transaction as the alert transition that causes it."""

    __tablename__ = "notifications"
    __table_args__ = (Index("ix_notifications_due", "state", "due_at"),)

    id: int | None = Field(default=None, primary_key=True)
    alert_id: int = Field(index=True)
    alert_key: str = Field(max_length=100)
    notifier: str = Field(max_length=100)  # a name from the config's [notifiers.*]
    kind: str = Field(max_length=20)  # trigger | resolve | acknowledge | reminder | test
    payload: str = Field(sa_column=Column(Text, nullable=False))  # AlertMessage JSON
    state: str = Field(default="pending", max_length=20)  # pending | sent | failed | suppressed
    created_at: float
    due_at: float
    attempts: int = 0
    sent_at: float | None = None
    last_error: str | None = Field(default=None, sa_column=Column(Text))
    external_ref: str | None = Field(default=None, max_length=200)  # e.g. Slack message ts


class DeliveryAttempt(SQLModel, table=True):
    """One try at sending a notification; the error text never holds a secret."""

    __tablename__ = "delivery_attempts"

    id: int | None = Field(default=None, primary_key=True)
    notification_id: int = Field(index=True)
    at: float
    outcome: str = Field(max_length=20)  # sent | retry | failed
    http_status: int | None = None
    error: str | None = Field(default=None, sa_column=Column(Text))
    duration_ms: float = 0.0


# --- the reconciler (hooks/reconcile.py)

class ReconcileCheck(SQLModel, table=True):
    """The reconciler's memory per prediction: what the API said, when to ask again."""

    __tablename__ = "reconcile_checks"

    prediction_id: str = Field(primary_key=True, max_length=300)
    # running | retry | not_found | gave_up | unfetchable
    outcome: str = Field(max_length=20)
    attempts: int = 0
    http_status: int | None = None
    checked_at: float
    next_at: float


class NotifierHealth(SQLModel, table=True):
    """Each notifier's recent sends, written with each attempt (notifiers/health.py decides
    from it whether the notifier keeps failing)."""

    __tablename__ = "notifier_health"

    notifier: str = Field(primary_key=True, max_length=100)
    permanent_streak: int = 0  # permanent failures since the last success
    failing_since: float | None = None  # the first failure since the last success
    last_attempt_at: float | None = None
    last_success_at: float | None = None
    last_error: str | None = Field(default=None, sa_column=Column(Text))


class AlertGroup(SQLModel, table=True):
    """One alert group on one notifier (alerts/group.py): its members as the channel was told,
    and the outbox row it folds later changes into. Written in the evaluation's transaction,
    with the notifications it causes; reused by the next group with its key."""

    __tablename__ = "alert_groups"
    __table_args__ = (UniqueConstraint("key", "notifier", name="uq_alert_groups_key"),)

    id: int | None = Field(default=None, primary_key=True)
    key: str = Field(max_length=64)  # the outbox rows' alert_key, PagerDuty's dedup_key
    notifier: str = Field(max_length=100)
    label: str = Field(sa_column=Column(Text, nullable=False))  # "rule=model-error-rate"
    generation: int = 0
    opened_at: float
    last_at: float  # when its latest notification is (was) due
    pending_id: int | None = None  # that notification, while it may still be rewritten
    members: str = Field(default="[]", sa_column=Column(Text, nullable=False))  # JSON
