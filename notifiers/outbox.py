"""The outbox: one row per (notification, notifier), written with the alert transition."""

from __future__ import annotations

from sqlalchemy import Column, Index, Text
from sqlmodel import Field, SQLModel


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
