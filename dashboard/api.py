"""JSON read API for predictions, and the liveness and readiness probes."""

from __future__ import annotations

import time
from datetime import UTC, datetime
from typing import Any

from fastapi import APIRouter, HTTPException, Query
from fastapi.responses import JSONResponse
from sqlalchemy import Engine, text
from sqlmodel import SQLModel

from hookwatch.dashboard.context import DashboardDep
from hookwatch.storage.health import CommitHealth, CommitState, probe_write
from hookwatch.storage.queries import get_prediction, list_predictions
from hookwatch.storage.revision import is_current
from hookwatch.storage.session import SessionDep
from hookwatch.storage.tables import Prediction

router = APIRouter()


def iso(ts: float | None) -> str | None:
    if ts is None:
        return None
    return datetime.fromtimestamp(ts, UTC).isoformat().replace("+00:00", "Z")


def queue_time(row: Prediction) -> float | None:
    """Seconds from created to started, when both are known."""
    if row.started_at is None or row.created_at is None:
        return None
    return row.started_at - row.created_at


class PredictionRead(SQLModel):
    id: str
    status: str
    model: str | None
    version: str | None
    deployment: str | None
    error: str | None
    error_fingerprint: str | None
    created_at: str | None
    started_at: str | None
    completed_at: str | None
    first_seen_at: str | None
    updated_at: str | None
    predict_time: float | None
    queue_time: float | None
    event_count: int
    reconciled: bool

    @classmethod
    def of(cls, row: Prediction) -> PredictionRead:
        return cls(
            id=row.id,
            status=row.status,
            model=row.model,
            version=row.version,
            deployment=row.deployment,
            error=row.error,
            error_fingerprint=row.fingerprint,
            created_at=iso(row.created_at),
            started_at=iso(row.started_at),
            completed_at=iso(row.completed_at),
            first_seen_at=iso(row.first_seen_at),
            updated_at=iso(row.updated_at),
            predict_time=row.predict_time,
            queue_time=queue_time(row),
            event_count=row.event_count,
            reconciled=row.source == "reconciled",
        )


@router.get("/api/predictions/{prediction_id}", response_model=PredictionRead, tags=["predictions"])
def read_prediction(prediction_id: str, session: SessionDep) -> PredictionRead:
    row = get_prediction(session, prediction_id=prediction_id)
    if row is None:
        raise HTTPException(404, f"no prediction with id {prediction_id!r} has been recorded")
    return PredictionRead.of(row)


@router.get("/api/predictions", response_model=list[PredictionRead], tags=["predictions"])
def read_predictions(
    session: SessionDep,
    status: str | None = Query(default=None, max_length=40),
    model: str | None = Query(default=None, max_length=300),
    deployment: str | None = Query(default=None, max_length=300),
    limit: int = Query(default=50, ge=1, le=1000),
) -> list[PredictionRead]:
    rows = list_predictions(
        session, status=status, model=model, deployment=deployment, limit=limit
    )
    return [PredictionRead.of(r) for r in rows]


@router.get("/healthz", tags=["health"])
def healthz() -> dict[str, str]:
    """Liveness: the process serves. It stays 200 while the database is locked or down, since
    a restart would not unlock it and would drop the requests in flight; /readyz says that."""
    return {"status": "ok"}


def commit_state(health: CommitHealth, engine: Engine) -> CommitState:
    """Whether webhooks are being committed. A writer that last failed, with nothing in flight
    to tell, is probed (storage.health.probe_write), so a quiet service becomes ready again."""
    state = health.state(time.monotonic())
    if state.probe and probe_write(engine) is None:
        health.recovered()
        state = health.state(time.monotonic())
    return state


@router.get("/readyz", tags=["health"])
def readyz(board: DashboardDep) -> JSONResponse:
    checks: dict[str, Any] = {}
    try:
        with board.engine.connect() as conn:
            conn.execute(text("SELECT 1"))
        checks["database"] = "ok"
        checks["migrations"] = "current" if is_current(board.engine) else "outdated"
    except Exception as exc:
        checks["database"] = f"unreachable ({type(exc).__name__})"
    # Reported, not required (leadership; the writer process, which, when down, is started
    # again with the next batch).
    checks.update(board.readiness())
    commits = commit_state(board.commits, board.engine)  # required: webhooks are committed
    checks["commits"] = commits.detail
    ready = (checks.get("database") == "ok" and checks.get("migrations") == "current"
             and commits.ready)
    return JSONResponse(
        {"status": "ready" if ready else "not_ready", "checks": checks},
        status_code=200 if ready else 503,
    )
