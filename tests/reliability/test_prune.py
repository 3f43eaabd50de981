"""Retention: raw events and minute buckets go; predictions, hourly and daily buckets stay."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from hookwatch.storage.prune import DAY, prune_old
from tests.conftest import ManualClock, signed_headers, token_headers
from tests.reliability.helpers import count

RETENTION_DAYS = 7


@pytest.fixture
def client(app_factory: Callable[..., FastAPI], db_url: str) -> Iterator[TestClient]:
    with TestClient(app_factory(database_url=db_url, retention_days=RETENTION_DAYS)) as c:
        yield c


def lifecycle(client: TestClient, clock: ManualClock, pid: str, final: str = "failed") -> list[
    tuple[bytes, dict[str, str]]
]:
    """Three signed webhooks; returns what was sent, for replays."""
    sent = []
    for status in ("starting", "processing", final):
        body = json.dumps({"id": pid, "status": status, "model": "acme/sdxl",
                           "metrics": {"predict_time": 1.5} if status == final else {}}).encode()
        headers = signed_headers(body, timestamp=clock.now)
        assert client.post("/hooks/replicate", content=body, headers=headers).status_code == 200
        sent.append((body, headers))
    return sent


def buckets(client: TestClient, resolution: int) -> int:
    return count(client, f"SELECT count(*) FROM outcome_buckets WHERE resolution = {resolution}")


def latency(client: TestClient, resolution: int) -> int:
    """Bucket rows carrying latency histograms."""
    return count(client, "SELECT count(*) FROM outcome_buckets WHERE latency IS NOT NULL AND "
                         f"resolution = {resolution}")


def test_prune_keeps_predictions_and_long_buckets(client: TestClient, clock: ManualClock) -> None:
    old = lifecycle(client, clock, "old")
    clock.advance(3 * DAY)
    lifecycle(client, clock, "middle")
    clock.advance((RETENTION_DAYS - 3) * DAY + 60)
    lifecycle(client, clock, "new")
    assert count(client, "SELECT count(*) FROM events") == 9
    hourly, daily = buckets(client, 3600), buckets(client, 86400)
    assert buckets(client, 60) == latency(client, 60) == 3

    client.app.state.jobs.run_now("prune")  # type: ignore[attr-defined]

    assert count(client, "SELECT count(*) FROM events WHERE prediction_id = 'old'") == 0
    assert count(client, "SELECT count(*) FROM events WHERE prediction_id = 'middle'") == 3
    assert count(client, "SELECT count(*) FROM events WHERE prediction_id = 'new'") == 3
    assert count(client, "SELECT count(*) FROM predictions") == 3
    assert client.get("/api/predictions/old").json()["status"] == "failed"
    assert (buckets(client, 3600), buckets(client, 86400)) == (hourly, daily)
    # Minute buckets older than two days went; the newest minute stays.
    assert buckets(client, 60) == 1
    assert latency(client, 60) == 1

    # A replay of a pruned webhook is stale, so refused; nothing is counted twice.
    body, headers = old[-1]
    response = client.post("/hooks/replicate", content=body, headers=headers)
    assert response.status_code == 401 and response.json()["error"] == "stale_timestamp"
    failed = "SELECT sum(failed) FROM outcome_buckets WHERE resolution = 3600 AND scope = 'model'"
    assert count(client, failed) == 3


def test_a_resent_token_event_after_prune_is_not_counted_again(
    client: TestClient, clock: ManualClock
) -> None:
    """Unsigned (Cog) events have no timestamp to go stale: counted_at keeps them single."""
    body = b'{"id":"cog-1","status":"failed","model":"acme/cog"}'
    assert client.post("/hooks/replicate", content=body, headers=token_headers()).status_code == 200
    clock.advance((RETENTION_DAYS + 1) * DAY)
    runtime = client.app.state.runtime  # type: ignore[attr-defined]
    retention = runtime.settings.retention_days  # what the app's prune job passes
    assert prune_old(runtime.engine, now=clock.now, retention_days=retention).events == 1
    assert client.post("/hooks/replicate", content=body, headers=token_headers()).status_code == 200
    failed = "SELECT sum(failed) FROM outcome_buckets WHERE resolution = 86400"
    assert count(client, failed) == 1


def test_prune_works_in_bounded_chunks(client: TestClient, clock: ManualClock) -> None:
    for i in range(9):
        lifecycle(client, clock, f"p{i}", final="succeeded")
    clock.advance((RETENTION_DAYS + 1) * DAY)
    engine = client.app.state.runtime.engine  # type: ignore[attr-defined]
    first = prune_old(engine, now=clock.now, retention_days=RETENTION_DAYS, chunk=5, max_chunks=2)
    assert (first.events, first.more) == (10, True)
    assert count(client, "SELECT count(*) FROM events") == 17
    second = prune_old(engine, now=clock.now, retention_days=RETENTION_DAYS, chunk=5, max_chunks=9)
    assert (second.events, second.more) == (17, False)
    assert count(client, "SELECT count(*) FROM predictions") == 9


def test_retention_below_a_day_is_raised_to_a_day(client: TestClient, clock: ManualClock) -> None:
    """Shorter would delete events still inside the signature tolerance, reopening replays."""
    lifecycle(client, clock, "recent")
    clock.advance(3600)
    engine = client.app.state.runtime.engine  # type: ignore[attr-defined]
    assert prune_old(engine, now=clock.now, retention_days=0).events == 0
    assert count(client, "SELECT count(*) FROM events") == 3
