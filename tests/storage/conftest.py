"""Storage fixtures: a migrated engine on SQLite or PostgreSQL, and events built from bodies."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import orjson
from sqlalchemy import Engine, text
from sqlmodel import Session

from hookwatch.dashboard.prediction_logs import shown_logs as page_logs
from hookwatch.hooks.payload import parse_json, read_prediction
from hookwatch.storage.batch import NewEvent
from hookwatch.storage.queries import get_prediction, prediction_events


def event(
    body: bytes | Mapping[str, Any],
    *,
    key: str,
    at: float,
    sent_at: float | None = None,
    query: Mapping[str, str] | None = None,
    source: str = "signed",
) -> NewEvent:
    """A NewEvent the way the receiver builds one, from a raw body."""
    raw = body if isinstance(body, bytes) else orjson.dumps(body)
    fields = read_prediction(parse_json(raw), query or {})
    return NewEvent(
        dedup_key=key, source=source, received_at=at, sent_at=sent_at, headers="{}", body=raw,
        **fields,
    )


def scalar(engine: Engine, sql: str, **params: Any) -> Any:
    with engine.connect() as conn:
        return conn.execute(text(sql), params).scalar_one()


def prediction(engine: Engine, pid: str) -> dict[str, Any]:
    with engine.connect() as conn:
        row = conn.execute(text("SELECT * FROM predictions WHERE id = :id"), {"id": pid}).one()
        return dict(row._mapping)


def outcome_totals(engine: Engine, *, resolution: int = 60) -> dict[tuple[str, str], tuple[int, ...]]:
    """(scope, name) -> (succeeded, failed, canceled, aborted, other), summed over buckets."""
    with engine.connect() as conn:
        rows = conn.execute(text(
            "SELECT scope, name, sum(succeeded), sum(failed), sum(canceled), sum(aborted), "
            "sum(other) FROM outcome_buckets WHERE resolution = :r GROUP BY scope, name"
        ), {"r": resolution})
        return {(r[0], r[1]): tuple(int(v) for v in r[2:]) for r in rows}


def shown_logs(engine: Engine, pid: str) -> str | None:
    """The logs the prediction page shows (dashboard.prediction_logs.shown_logs)."""
    with Session(engine) as session:
        row = get_prediction(session, prediction_id=pid)
        assert row is not None
        events = prediction_events(session, prediction=row)
    return page_logs(events, row.logs)
