"""POST /hooks/replicate through the real app into a real SQLite file."""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from typing import Any

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from sqlalchemy import text

from tests.conftest import FIXTURES, ManualClock, fixture_bytes, signed_headers, token_headers


def rows(client: TestClient, table: str) -> int:
    with client.app.state.runtime.engine.connect() as conn:  # type: ignore[attr-defined]
        return int(conn.execute(text(f"SELECT count(*) FROM {table}")).scalar_one())


def buckets(client: TestClient) -> dict[tuple[str, str], tuple[int, ...]]:
    with client.app.state.runtime.engine.connect() as conn:  # type: ignore[attr-defined]
        result = conn.execute(text(
            "SELECT scope, name, succeeded, failed, canceled, aborted FROM outcome_buckets "
            "WHERE resolution = 60"
        ))
        return {(r[0], r[1]): tuple(r[2:]) for r in result}


def post_signed(
    client: TestClient, clock: ManualClock, body: bytes, msg_id: str | None = None, query: str = ""
) -> Any:
    return client.post(
        "/hooks/replicate" + query,
        content=body,
        headers=signed_headers(body, msg_id=msg_id, timestamp=clock.now),
    )


def doc(**fields: Any) -> bytes:
    base: dict[str, Any] = {"id": "pred-1", "status": "starting", "model": "acme/sdxl"}
    base.update(fields)
    return json.dumps(base).encode()


@pytest.mark.parametrize("name", ["starting.json", "succeeded.json", "canceled.json"])
def test_every_replicate_fixture_is_recorded(
    client: TestClient, clock: ManualClock, name: str
) -> None:
    body = fixture_bytes(name)
    response = post_signed(client, clock, body)
    assert response.status_code == 200, response.text
    expected = json.loads(body)
    got = client.get(f"/api/predictions/{expected['id']}").json()
    assert got["status"] == expected["status"]
    assert got["model"] == expected.get("model")
    assert got["version"] == expected["version"]
    assert got["event_count"] == 1
    assert got["created_at"].startswith(expected["created_at"][:19])


def test_canceled_fixture_keeps_tiny_float_and_counts_canceled_apart(
    client: TestClient, clock: ManualClock
) -> None:
    assert post_signed(client, clock, fixture_bytes("canceled.json")).status_code == 200
    got = client.get("/api/predictions/vrsafsk7mnrgj0cf0p2ax766s4").json()
    assert got["predict_time"] == pytest.approx(3e-06)
    assert buckets(client)[("model", "stability-ai/sdxl")] == (0, 0, 1, 0)


def test_cog_lifecycle_with_token_and_query_labels(client: TestClient) -> None:
    lines = (FIXTURES / "coglet-0.23-lifecycle.jsonl").read_bytes().splitlines()
    for line in lines:
        response = client.post(
            "/hooks/replicate?model=acme/cog-model&deployment=acme/cog-prod",
            content=line,
            headers=token_headers(),
        )
        assert response.status_code == 200, response.text
    p1 = client.get("/api/predictions/p1").json()
    p2 = client.get("/api/predictions/p2").json()
    assert (p1["status"], p1["event_count"], p1["model"]) == ("succeeded", 5, "acme/cog-model")
    assert (p2["status"], p2["deployment"]) == ("failed", "acme/cog-prod")
    assert p2["error"].endswith("RuntimeError: boom")
    assert p2["predict_time"] == pytest.approx(0.302342955)
    counts = buckets(client)
    assert counts[("model", "acme/cog-model")] == (1, 1, 0, 0)
    assert counts[("deployment", "acme/cog-prod")] == (1, 1, 0, 0)


def test_cog_016_start_body_with_null_created_at(client: TestClient) -> None:
    response = client.post(
        "/hooks/replicate?model=acme/old", content=fixture_bytes("cog-0.16-start.json"),
        headers=token_headers(),
    )
    assert response.status_code == 200
    got = client.get("/api/predictions/p1").json()
    assert got["status"] == "processing"
    assert got["created_at"] is None
    assert got["started_at"] == "2026-11-28T04:15:53.843153Z"


def test_body_field_wins_over_query_label(client: TestClient, clock: ManualClock) -> None:
    body = doc(status="succeeded", deployment="from-body")
    assert post_signed(client, clock, body, query="?deployment=from-query&version=v9").status_code == 200
    got = client.get("/api/predictions/pred-1").json()
    assert got["deployment"] == "from-body"
    assert got["version"] == "v9"


def test_duplicate_webhook_id_answers_200_and_adds_nothing(
    client: TestClient, clock: ManualClock
) -> None:
    body = doc(status="failed", error="boom")
    first = post_signed(client, clock, body, msg_id="msg_same")
    again = post_signed(client, clock, body, msg_id="msg_same")
    assert (first.status_code, first.json()["status"]) == (200, "recorded")
    assert (again.status_code, again.json()["status"]) == (200, "duplicate")
    assert rows(client, "events") == 1
    assert client.get("/api/predictions/pred-1").json()["event_count"] == 1
    assert buckets(client)[("model", "acme/sdxl")] == (0, 1, 0, 0)


def test_token_sender_duplicates_are_detected_by_body(client: TestClient) -> None:
    body = doc(status="succeeded")
    for _ in range(3):
        assert client.post("/hooks/replicate", content=body, headers=token_headers()).status_code == 200
    assert rows(client, "events") == 1


def test_out_of_order_never_regresses_and_counts_once(
    client: TestClient, clock: ManualClock
) -> None:
    post_signed(client, clock, doc(status="succeeded", completed_at="2026-01-01T00:00:02Z"))
    post_signed(client, clock, doc(status="processing", logs="late"))
    post_signed(client, clock, doc(status="starting"))
    post_signed(client, clock, doc(status="failed", error="a second terminal event"))
    got = client.get("/api/predictions/pred-1").json()
    assert got["status"] == "succeeded"
    assert got["error"] is None
    assert got["event_count"] == 4
    assert buckets(client)[("model", "acme/sdxl")] == (1, 0, 0, 0)


def test_processing_updates_move_forward_by_sender_time(
    client: TestClient, clock: ManualClock
) -> None:
    post_signed(client, clock, doc(status="processing", logs="step 1\nstep 2\n"))
    clock.advance(-5)  # an older delivery arrives late
    post_signed(client, clock, doc(status="processing", logs="step 1\n"))
    with client.app.state.runtime.engine.connect() as conn:  # type: ignore[attr-defined]
        logs = conn.execute(text("SELECT logs FROM predictions")).scalar_one()
    assert logs is None  # in flight: the logs stay in the events (storage.batch.kept_logs)
    page = client.get("/predictions/pred-1").text
    shown = re.search(r'<pre id="logs">(.*?)</pre>', page, re.S)
    assert shown is not None and shown.group(1) == "step 1\nstep 2"


@pytest.mark.parametrize("status", ["succeeded", "failed", "canceled", "aborted"])
def test_all_terminal_statuses_count_in_their_column(
    client: TestClient, clock: ManualClock, status: str
) -> None:
    post_signed(client, clock, doc(status=status))
    counts = buckets(client)[("model", "acme/sdxl")]
    assert counts == tuple(int(s == status) for s in ("succeeded", "failed", "canceled", "aborted"))


def test_hidden_version_and_timestamp_shapes(client: TestClient, clock: ManualClock) -> None:
    body = doc(
        status="succeeded",
        version="hidden",
        created_at="2026-11-28T04:15:53Z",
        started_at="2026-11-28T04:15:54.1+00:00",
        completed_at="2026-11-28T04:15:55.123456789Z",
        data_removed=True,
        some_future_field={"kept": True},
    )
    assert post_signed(client, clock, body).status_code == 200
    got = client.get("/api/predictions/pred-1").json()
    assert got["version"] == "hidden"
    assert got["completed_at"] == "2026-11-28T04:15:55.123456Z"
    assert got["queue_time"] == pytest.approx(1.1)
    assert ("version", "hidden") not in buckets(client)
    with client.app.state.runtime.engine.connect() as conn:  # type: ignore[attr-defined]
        stored = conn.execute(text("SELECT body, headers FROM events")).one()
    assert stored[0] == body  # the raw body, unknown keys and all
    assert "webhook-signature" in json.loads(stored[1])


def test_secret_headers_are_not_stored(client: TestClient) -> None:
    client.post("/hooks/replicate", content=doc(), headers={**token_headers(), "cookie": "s=1"})
    with client.app.state.runtime.engine.connect() as conn:  # type: ignore[attr-defined]
        stored = json.loads(conn.execute(text("SELECT headers FROM events")).scalar_one())
    assert "authorization" not in stored and "cookie" not in stored


REFUSALS: list[tuple[str, Callable[[bytes, float], dict[str, str]], bytes, int, str]] = [
    ("not JSON", lambda b, ts: signed_headers(b, timestamp=ts), b"{not json", 422, "invalid_json"),
    ("invalid UTF-8", lambda b, ts: signed_headers(b, timestamp=ts), b'{"id": "\xff"}', 422, "invalid_json"),
    ("JSON array", lambda b, ts: signed_headers(b, timestamp=ts), b"[1, 2]", 422, "not_a_prediction"),
    ("no id", lambda b, ts: signed_headers(b, timestamp=ts), b'{"status": "starting"}', 422, "not_a_prediction"),
    ("numeric status", lambda b, ts: signed_headers(b, timestamp=ts), b'{"id": "x", "status": 3}', 422,
     "not_a_prediction"),
    ("model not a string", lambda b, ts: signed_headers(b, timestamp=ts),
     b'{"id": "x", "status": "starting", "model": 5}', 422, "not_a_prediction"),
    ("wrong content type", lambda b, ts: {**signed_headers(b, timestamp=ts), "content-type": "text/plain"},
     doc(), 415, "unsupported_media_type"),
    ("no content type", lambda b, ts: {k: v for k, v in signed_headers(b, timestamp=ts).items()
                                    if k != "content-type"}, doc(), 415, "unsupported_media_type"),
    ("unsigned", lambda b, ts: {"content-type": "application/json"}, doc(), 401, "missing_credentials"),
    ("bad token", lambda b, ts: token_headers("nope"), doc(), 401, "invalid_token"),
    ("over the cap", lambda b, ts: signed_headers(b, timestamp=ts), b'{"id": "x", "pad": "' + b"a" * 1100 + b'"}',
     413, "body_too_large"),
]


@pytest.mark.parametrize(("case", "make_headers", "body", "status", "code"), REFUSALS)
def test_refusals_are_precise_and_store_nothing(
    app_factory: Callable[..., FastAPI],
    clock: ManualClock,
    case: str,
    make_headers: Callable[[bytes, float], dict[str, str]],
    body: bytes,
    status: int,
    code: str,
) -> None:
    with TestClient(app_factory(max_body_bytes=1024)) as client:
        response = client.post("/hooks/replicate", content=body, headers=make_headers(body, clock.now))
        assert response.status_code == status, case
        assert response.json()["error"] == code
        assert response.json()["detail"]
        assert rows(client, "events") == 0
        assert rows(client, "predictions") == 0


def test_no_secret_and_no_token_refuses_everything(
    app_factory: Callable[..., FastAPI],
) -> None:
    with TestClient(app_factory(webhook_secrets=[], ingest_token=None)) as client:
        response = client.post("/hooks/replicate", content=doc(), headers=token_headers())
        assert response.status_code == 401
        assert response.json()["error"] == "not_configured"
        assert "HOOKWATCH_WEBHOOK_SECRETS" in response.json()["detail"]


def test_declared_oversize_is_refused_before_reading(
    app_factory: Callable[..., FastAPI],
) -> None:
    with TestClient(app_factory(max_body_bytes=10)) as client:
        response = client.post(
            "/hooks/replicate", content=b"x" * 11, headers={"content-type": "application/json"}
        )
        assert response.status_code == 413


def test_prediction_list_filters_and_orders_newest_first(
    client: TestClient, clock: ManualClock
) -> None:
    for i, status in enumerate(["succeeded", "failed", "failed"]):
        clock.advance(1)
        post_signed(client, clock, doc(id=f"p{i}", status=status, deployment=f"d{i % 2}"))
    listed = client.get("/api/predictions", params={"status": "failed"}).json()
    assert [p["id"] for p in listed] == ["p2", "p1"]
    assert [p["id"] for p in client.get("/api/predictions?deployment=d0").json()] == ["p2", "p0"]
    assert len(client.get("/api/predictions?limit=1").json()) == 1
    assert client.get("/api/predictions?limit=0").status_code == 422
    missing = client.get("/api/predictions/nope")
    assert missing.status_code == 404 and missing.json()["error"] == "not_found"


def test_health_and_readiness(client: TestClient) -> None:
    assert client.get("/healthz").json() == {"status": "ok"}
    ready = client.get("/readyz")
    assert ready.status_code == 200
    assert ready.json()["checks"]["database"] == "ok"
    pid = client.app.state.runtime.writer.process_id  # type: ignore[attr-defined]
    assert pid is not None and ready.json()["checks"]["writer"] == f"process {pid}"
    assert ready.json()["checks"]["commits"] == "ok"


def test_not_ready_while_commits_fail_and_ready_again_once_the_lock_is_free(
    client: TestClient,
) -> None:
    """/readyz probes the write lock while the last commit failed and none is in flight;
    /healthz, the liveness answer, stays 200 throughout."""
    import sqlite3

    runtime = client.app.state.runtime  # type: ignore[attr-defined]
    health = runtime.writer.health
    health.ended(health.began(0.0), "OperationalError")  # as a failed batch leaves it
    lock = sqlite3.connect(runtime.engine.url.database, isolation_level=None)
    lock.execute("BEGIN IMMEDIATE")
    try:
        answer = client.get("/readyz")
        assert answer.status_code == 503
        assert answer.json()["checks"]["commits"] == "failing: OperationalError"
        assert client.get("/healthz").status_code == 200
    finally:
        lock.execute("ROLLBACK")
        lock.close()
    answer = client.get("/readyz")
    assert answer.status_code == 200 and answer.json()["checks"]["commits"] == "ok"


def test_the_writer_thread_serves_when_the_process_is_turned_off(
    app_factory: Callable[..., FastAPI], clock: ManualClock
) -> None:
    with TestClient(app_factory(writer_process=False)) as client:
        body = doc(id="p1", status="succeeded")
        assert client.post("/hooks/replicate", content=body,
                           headers=signed_headers(body, timestamp=clock.now)).status_code == 200
        assert client.get("/readyz").json()["checks"]["writer"] == "in-process"
        assert rows(client, "events") == 1


def test_token_dedup_tells_bodies_apart_even_with_the_longest_id(client: TestClient) -> None:
    long_id = "p" * 256
    first = doc(id=long_id, status="processing", logs="step 1\n")
    second = doc(id=long_id, status="processing", logs="step 1\nstep 2\n")
    for body in (first, second, first):
        assert client.post("/hooks/replicate", content=body, headers=token_headers()).status_code == 200
    assert rows(client, "events") == 2
