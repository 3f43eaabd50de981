"""Alert state tables: one Alert row per (rule, scope, name), its transitions, silences."""

from __future__ import annotations

from sqlalchemy import Column, Index, Text, UniqueConstraint
from sqlmodel import Field, SQLModel


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
