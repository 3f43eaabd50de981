"""The reconciler against a local server that answers like Replicate's API.

A second recording server plays "elsewhere": the host a payload's `urls.get` points at. The
reconciler must never call it, nor follow a redirect to it, nor send the token anywhere else.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from hookwatch.hooks.reconcile import BACKOFF_BASE, MAX_ATTEMPTS, MAX_FAILURES_IN_A_ROW
from hookwatch.storage.rollups import Counted
from tests.conftest import ManualClock, signed_headers, token_headers
from tests.reliability.helpers import RecordingServer, count, json_answer

API_TOKEN = "r8_reconciler-test-token-5b1c0e"
AFTER = 600.0


def prediction(pid: str, status: str, elsewhere: str, **extra: Any) -> dict[str, Any]:
    doc: dict[str, Any] = {
        "id": pid,
        "model": "acme/sdxl",
        "version": "v1",
        "status": status,
        "input": {"prompt": "a corgi"},
        "output": None,
        "error": None,
        "logs": "",
        "metrics": {},
        "created_at": "2026-11-28T04:00:00.000Z",
        "urls": {"get": f"{elsewhere}/v1/predictions/{pid}",
                 "cancel": f"{elsewhere}/v1/predictions/{pid}/cancel"},
    }
    doc.update(extra)
    return doc


@pytest.fixture
def servers() -> Iterator[tuple[RecordingServer, RecordingServer]]:
    with RecordingServer() as api, RecordingServer() as elsewhere:
        yield api, elsewhere


@pytest.fixture
def make_client(
    app_factory: Callable[..., FastAPI], servers: tuple[RecordingServer, RecordingServer]
) -> Iterator[Callable[..., TestClient]]:
    api, _ = servers
    clients: list[TestClient] = []

    def make(**overrides: Any) -> TestClient:
        values: dict[str, Any] = {
            "replicate_api_token": API_TOKEN,
            "replicate_api_url": api.url + "/v1",
            "reconcile_after": AFTER,
        }
        values.update(overrides)
        client = TestClient(app_factory(**values))
        client.__enter__()
        clients.append(client)
        return client

    yield make
    for client in clients:
        client.__exit__(None, None, None)


def start(client: TestClient, clock: ManualClock, pid: str, elsewhere: str) -> None:
    """Replicate's 'starting' webhook, signed, then a second of clock."""
    body = json.dumps(prediction(pid, "starting", elsewhere)).encode()
    response = client.post(
        "/hooks/replicate", content=body, headers=signed_headers(body, timestamp=clock.now)
    )
    assert response.status_code == 200, response.text
    clock.advance(1)


def run(client: TestClient, clock: ManualClock) -> Any:
    return client.app.state.runtime.reconciler.run(clock.now)  # type: ignore[attr-defined]


def test_missing_terminal_is_fetched_and_recorded_forward_only(
    make_client: Callable[..., TestClient],
    clock: ManualClock,
    servers: tuple[RecordingServer, RecordingServer],
    db_url: str,
) -> None:
    api, elsewhere = servers
    client = make_client(database_url=db_url)
    counted: list[Counted] = []
    client.app.state.runtime.counted_listeners.append(counted.extend)  # type: ignore[attr-defined]
    final = prediction("p1", "failed", elsewhere.url, error="CUDA out of memory",
                       completed_at="2026-11-28T04:00:09.5Z", metrics={"predict_time": 8.5})
    api.routes["/v1/predictions/p1"] = [json_answer(final)]
    start(client, clock, "p1", elsewhere.url)

    clock.advance(AFTER - 10)
    assert run(client, clock).fetched == 0  # not yet: the webhook may still come
    assert api.requests == []

    clock.advance(20)
    report = run(client, clock)
    assert (report.fetched, report.recorded, report.completed) == (1, 1, 1)
    assert api.paths() == ["/v1/predictions/p1"]
    assert api.requests[0].headers["authorization"] == f"Bearer {API_TOKEN}"
    assert elsewhere.requests == []
    got = client.get("/api/predictions/p1").json()
    assert (got["status"], got["reconciled"], got["error"]) == ("failed", True, "CUDA out of memory")
    assert count(client, "SELECT count(*) FROM events WHERE dedup_key = 'rc:p1:failed' "
                         "AND source = 'reconciled'") == 1
    assert [c.prediction_id for c in counted] == ["p1"]  # the evaluator is nudged
    failed = "SELECT sum(failed) FROM outcome_buckets WHERE resolution = 60 AND scope = 'model'"
    assert count(client, failed) == 1

    # Finished: never asked about again, and the late webhook counts nothing twice.
    clock.advance(3600)
    assert run(client, clock).fetched == 0
    late = json.dumps(final).encode()
    response = client.post(
        "/hooks/replicate", content=late, headers=signed_headers(late, timestamp=clock.now)
    )
    assert response.status_code == 200
    assert count(client, failed) == 1
    assert len(api.requests) == 1


def test_not_found_is_reported_once_and_never_retried(
    make_client: Callable[..., TestClient],
    clock: ManualClock,
    servers: tuple[RecordingServer, RecordingServer],
    caplog: pytest.LogCaptureFixture,
) -> None:
    api, elsewhere = servers
    client = make_client()
    start(client, clock, "gone1", elsewhere.url)
    clock.advance(AFTER)
    with caplog.at_level(logging.WARNING, "hookwatch.reconcile"):
        report = run(client, clock)
    assert (report.fetched, report.not_found, report.stuck) == (1, 1, 1)
    assert "gone1" in caplog.text and "404" in caplog.text
    for _ in range(5):
        clock.advance(86400)
        assert run(client, clock).fetched == 0
    assert api.paths() == ["/v1/predictions/gone1"]
    assert client.get("/api/predictions/gone1").json()["status"] == "starting"


def test_429_pauses_every_request_until_retry_after(
    make_client: Callable[..., TestClient],
    clock: ManualClock,
    servers: tuple[RecordingServer, RecordingServer],
) -> None:
    api, elsewhere = servers
    client = make_client()
    for pid in ("r1", "r2"):
        api.routes[f"/v1/predictions/{pid}"] = [
            json_answer({"detail": "Request was throttled."}, 429, {"Retry-After": "120"}),
            json_answer(prediction(pid, "succeeded", elsewhere.url)),
        ]
        start(client, clock, pid, elsewhere.url)
    clock.advance(AFTER)

    report = run(client, clock)
    assert (report.fetched, report.skipped) == (1, "rate_limited")
    assert report.paused_until == pytest.approx(clock.now + 120)
    clock.advance(119)
    assert run(client, clock).fetched == 0
    assert len(api.requests) == 1

    clock.advance(2)
    report = run(client, clock)
    assert (report.fetched, report.completed) == (2, 1)  # r1 answers 200, r2 its first 429
    clock.advance(121)
    assert run(client, clock).completed == 1
    assert [client.get(f"/api/predictions/{p}").json()["status"] for p in ("r1", "r2")] == [
        "succeeded", "succeeded"
    ]
    assert elsewhere.requests == []


def test_server_errors_back_off_and_stop_the_run(
    make_client: Callable[..., TestClient],
    clock: ManualClock,
    servers: tuple[RecordingServer, RecordingServer],
    db_url: str,
) -> None:
    api, elsewhere = servers
    api.default = json_answer({"detail": "upstream"}, 503)
    client = make_client(database_url=db_url)
    pids = [f"e{i}" for i in range(MAX_FAILURES_IN_A_ROW + 2)]
    for pid in pids:
        start(client, clock, pid, elsewhere.url)
    clock.advance(AFTER)

    report = run(client, clock)
    assert (report.fetched, report.failed) == (MAX_FAILURES_IN_A_ROW, MAX_FAILURES_IN_A_ROW)
    first = api.paths()
    assert first == [f"/v1/predictions/{p}" for p in pids[:MAX_FAILURES_IN_A_ROW]]
    # The rest wait for the next run; the failed ones for their backoff.
    clock.advance(1)
    report = run(client, clock)
    assert report.fetched == 2
    assert api.paths()[len(first):] == [f"/v1/predictions/{p}" for p in pids[-2:]]
    clock.advance(BACKOFF_BASE)
    assert run(client, clock).fetched == MAX_FAILURES_IN_A_ROW  # due again, 60 s later

    # Once the API is back, the next check after the (doubled) backoff records them.
    api.default = json_answer({})
    for pid in pids:
        api.routes[f"/v1/predictions/{pid}"] = [
            json_answer(prediction(pid, "canceled", elsewhere.url))
        ]
    for _ in range(4):
        clock.advance(2 * BACKOFF_BASE)
        run(client, clock)
    assert {client.get(f"/api/predictions/{p}").json()["status"] for p in pids} == {"canceled"}


def test_still_running_is_recorded_once_and_given_up_after_max_attempts(
    make_client: Callable[..., TestClient],
    clock: ManualClock,
    servers: tuple[RecordingServer, RecordingServer],
) -> None:
    api, elsewhere = servers
    client = make_client()
    api.routes["/v1/predictions/slow"] = [
        json_answer(prediction("slow", "processing", elsewhere.url))
    ]
    start(client, clock, "slow", elsewhere.url)
    clock.advance(AFTER)
    for _ in range(3 * MAX_ATTEMPTS):
        run(client, clock)
        clock.advance(3600)
    assert len(api.requests) == MAX_ATTEMPTS
    assert count(client, "SELECT count(*) FROM events WHERE source = 'reconciled'") == 1
    assert count(client, "SELECT count(*) FROM reconcile_checks WHERE outcome = 'gave_up'") == 1
    assert client.get("/api/predictions/slow").json()["status"] == "processing"


def test_token_never_leaves_the_api_base_url(
    make_client: Callable[..., TestClient],
    clock: ManualClock,
    servers: tuple[RecordingServer, RecordingServer],
) -> None:
    """A redirect is not followed; a hostile id never becomes a path; an answer about another
    prediction is refused; a Cog server's predictions (bearer token) are not looked up."""
    api, elsewhere = servers
    client = make_client()
    api.routes["/v1/predictions/moved"] = [
        (302, {"location": f"{elsewhere.url}/v1/predictions/moved"}, b"")
    ]
    api.routes["/v1/predictions/other"] = [
        json_answer(prediction("someone-else", "succeeded", elsewhere.url))
    ]
    start(client, clock, "moved", elsewhere.url)
    start(client, clock, "other", elsewhere.url)
    for hostile in ("..%2F..%2Fx", "a/../../x", "x@127.0.0.1", "x?y=1", "x#y"):
        start(client, clock, hostile, elsewhere.url)
    cog = json.dumps({"id": "cog1", "status": "processing"}).encode()
    assert client.post("/hooks/replicate", content=cog, headers=token_headers()).status_code == 200
    clock.advance(AFTER + 10)

    report = run(client, clock)
    assert report.stuck == 8
    assert sorted(api.paths()) == ["/v1/predictions/moved", "/v1/predictions/other"]
    assert report.failed == 2 and report.recorded == 0
    assert elsewhere.requests == []
    assert client.get("/api/predictions/other").json()["status"] == "starting"
    for _ in range(3):
        clock.advance(3600)
        run(client, clock)
    assert set(api.paths()) == {"/v1/predictions/moved", "/v1/predictions/other"}
    assert elsewhere.requests == []


def test_without_a_token_stuck_predictions_are_reported_and_nothing_is_fetched(
    make_client: Callable[..., TestClient],
    clock: ManualClock,
    servers: tuple[RecordingServer, RecordingServer],
    caplog: pytest.LogCaptureFixture,
) -> None:
    api, elsewhere = servers
    client = make_client(replicate_api_token=None)
    for pid in ("s1", "s2"):
        start(client, clock, pid, elsewhere.url)
    clock.advance(AFTER)
    jobs = client.app.state.jobs  # type: ignore[attr-defined]
    with caplog.at_level(logging.WARNING, "hookwatch.reconcile"):
        jobs.run_now("reconcile")
        jobs.run_now("reconcile")
    report = client.app.state.runtime.reconciler.report  # type: ignore[attr-defined]
    assert (report.stuck, report.fetched, report.skipped) == (2, 0, "no_token")
    assert caplog.text.count("HOOKWATCH_REPLICATE_API_TOKEN") == 1  # said once, not every run
    assert api.requests == [] and elsewhere.requests == []
    assert client.get("/readyz").status_code == 200
