"""Keyword-only read queries over predictions and events."""

from __future__ import annotations

from sqlalchemy import false
from sqlmodel import Session, col, select
from sqlmodel.sql.expression import SelectOfScalar

from hookwatch.storage.rates import _prediction_scope
from hookwatch.storage.tables import Event, Prediction


def get_prediction(session: Session, *, prediction_id: str) -> Prediction | None:
    return session.get(Prediction, prediction_id)


def list_predictions(
    session: Session,
    *,
    status: str | None = None,
    model: str | None = None,
    deployment: str | None = None,
    limit: int = 50,
    before: float | None = None,
) -> list[Prediction]:
    """Newest first (by first arrival)."""
    query = select(Prediction)
    if status:
        query = query.where(Prediction.status == status)
    if model:
        query = query.where(Prediction.model == model)
    if deployment:
        query = query.where(Prediction.deployment == deployment)
    if before is not None:
        query = query.where(Prediction.first_seen_at < before)
    query = query.order_by(col(Prediction.first_seen_at).desc(), col(Prediction.id)).limit(limit)
    return list(session.exec(query))


def prediction_events(session: Session, *, prediction: Prediction) -> list[Event]:
    """In the order received: the events its row lists (by id), then those it does not (the
    partial index; storage.batch.LISTED_EVENTS). Ids are matched with the prediction too: an
    id freed by pruning can be reused by a later event."""
    listed = [int(i) for i in prediction.event_ids.split(",")] if prediction.event_ids else []
    events = list(session.exec(unlisted_events(prediction.id)))
    if listed:
        events += session.exec(
            select(Event).where(col(Event.id).in_(listed), Event.prediction_id == prediction.id))
    return sorted(events, key=lambda e: (e.received_at, e.id or 0))


def unlisted_events(prediction_id: str) -> SelectOfScalar[Event]:
    """Its events not on its row's list; `listed = false` is the partial index's condition."""
    return select(Event).where(Event.prediction_id == prediction_id, Event.listed == false())


def failed_predictions(
    session: Session, *, scope: str, name: str, since: float, until: float, limit: int = 200
) -> list[Prediction]:
    """The scope's predictions counted as failed in [since, until], newest first (through the
    (status, counted_at) index, as storage.rates.top_fingerprints)."""
    query = (
        select(Prediction)
        .where(Prediction.status == "failed", col(Prediction.counted_at) >= since,
               col(Prediction.counted_at) <= until, *_prediction_scope(scope, name))
        .order_by(col(Prediction.counted_at).desc(), col(Prediction.id))
        .limit(limit)
    )
    return list(session.exec(query))
