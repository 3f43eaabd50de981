"""Test helpers: events through the real writer, and config snippets."""

from __future__ import annotations

import itertools
import json

from sqlalchemy import Engine

from hookwatch.storage.batch import NewEvent
from hookwatch.storage.writer import Writer
from tests.conftest import ManualClock

_ids = itertools.count(1)


def event(
    status: str,
    *,
    at: float,
    model: str | None = "acme/sdxl",
    deployment: str | None = "acme/sdxl-prod",
    version: str | None = "v1",
    error: str | None = None,
    predict_time: float | None = None,
    queue_time: float | None = None,
    prediction_id: str | None = None,
) -> NewEvent:
    pid = prediction_id or f"pred-{next(_ids)}"
    created = at - (queue_time or 0.0) - (predict_time or 0.0)
    started = created + queue_time if queue_time is not None else None
    body = {"id": pid, "status": status, "model": model, "error": error}
    return NewEvent(
        dedup_key=f"test:{pid}:{status}:{next(_ids)}",
        prediction_id=pid,
        status=status,
        source="signed",
        received_at=at,
        sent_at=at,
        headers="{}",
        body=json.dumps(body).encode(),
        model=model,
        version=version,
        deployment=deployment,
        error=error,
        created_at=created if queue_time is not None else None,
        started_at=started,
        predict_time=predict_time,
    )


def ingest(engine: Engine, clock: ManualClock, events: list[NewEvent]) -> None:
    """One committed batch through the real writer, at the clock's time."""
    Writer(engine, clock=clock).commit(events)


def outcomes(
    engine: Engine, clock: ManualClock, *, succeeded: int = 0, failed: int = 0,
    canceled: int = 0, error: str = "boom", **labels: str | None,
) -> None:
    events = [event("succeeded", at=clock.now, **labels) for _ in range(succeeded)]  # type: ignore[arg-type]
    events += [event("failed", at=clock.now, error=error, **labels) for _ in range(failed)]  # type: ignore[arg-type]
    events += [event("canceled", at=clock.now, **labels) for _ in range(canceled)]  # type: ignore[arg-type]
    if events:
        ingest(engine, clock, events)


WEBHOOK_SECRET = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"


def config_text(rules: str, *, notifiers: tuple[str, ...] = ("team", "pager")) -> str:
    """A config with webhook notifiers (never delivered to: the tests run no deliver job)."""
    tables = "".join(
        f'[notifiers.{name}]\ntype = "webhook"\nurl = "http://127.0.0.1:9/{name}"\n'
        f'secret = "{WEBHOOK_SECRET}"\n\n'
        for name in notifiers
    )
    return tables + rules


RATE_RULE = """
[[rules]]
name = "dep-errors"
kind = "error_rate"
scope = "deployment"
window = "10m"
threshold = 0.2
min_predictions = 20
notify = ["team", "pager"]
repeat_interval = "1h"
"""
