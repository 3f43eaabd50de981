"""Replay and forgery: what an attacker who captured a webhook, or holds another key, can do.

Nothing: a reused webhook-id is a duplicate; a capture goes stale after the tolerance; moving
its id, timestamp or body breaks the signature; and no key hookwatch holds for another purpose
(the alert webhook's secret, the ingest or dashboard token) signs a webhook it accepts.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import json
from collections.abc import Callable, Iterator

import httpx
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from fastapi import FastAPI
from fastapi.testclient import TestClient

from hookwatch.hooks.signature import sign
from tests.conftest import SECRET, TOKEN, LiveServer, ManualClock, signed_headers
from tests.reliability.helpers import count

TOLERANCE = 300
ALERT_WEBHOOK_SECRET = "whsec_" + base64.b64encode(b"alert-webhook-key-32-bytes-long!").decode()
DASHBOARD_TOKEN = "dashboard-token-for-replay-tests"
BODY = json.dumps({"id": "replay-1", "status": "failed", "model": "acme/sdxl",
                   "error": "boom"}).encode()


@pytest.fixture
def client(app_factory: Callable[..., FastAPI]) -> Iterator[TestClient]:
    app = app_factory(signature_tolerance=TOLERANCE, dashboard_token=DASHBOARD_TOKEN)
    with TestClient(app) as c:
        yield c


def stored(client: TestClient) -> tuple[int, int]:
    failed = count(client, "SELECT coalesce(sum(failed), 0) FROM outcome_buckets "
                           "WHERE resolution = 60 AND scope = 'model'")
    return count(client, "SELECT count(*) FROM events"), failed


def post(client: TestClient, body: bytes, headers: dict[str, str]) -> httpx.Response:
    return client.post("/hooks/replicate", content=body, headers=headers)


def test_reused_webhook_id_is_a_duplicate(client: TestClient, clock: ManualClock) -> None:
    first = post(client, BODY, signed_headers(BODY, msg_id="msg_replay", timestamp=clock.now))
    assert first.json()["status"] == "recorded"
    clock.advance(60)  # Replicate's retry: same id, fresh timestamp and signature
    again = post(client, BODY, signed_headers(BODY, msg_id="msg_replay", timestamp=clock.now))
    assert again.status_code == 200 and again.json()["status"] == "duplicate"
    # Even a different body under the same id (a sender bug) is not recorded twice.
    other = BODY.replace(b"boom", b"bang")
    third = post(client, other, signed_headers(other, msg_id="msg_replay", timestamp=clock.now))
    assert third.json()["status"] == "duplicate"
    assert stored(client) == (1, 1)


def test_concurrent_copies_of_one_webhook_store_one_event(
    app_factory: Callable[..., FastAPI], clock: ManualClock
) -> None:
    """Copies racing into the same group-commit batch, through a real uvicorn."""
    headers = signed_headers(BODY, msg_id="msg_race", timestamp=clock.now)
    app = app_factory()
    with LiveServer(app) as server:

        async def burst() -> list[str]:
            async with httpx.AsyncClient(base_url=server.url) as http:
                answers = await asyncio.gather(*(
                    http.post("/hooks/replicate", content=BODY, headers=headers) for _ in range(20)
                ))
            return [a.json()["status"] for a in answers]

        statuses = asyncio.run(burst())
        engine = app.state.runtime.engine
        assert sorted(set(statuses)) == ["duplicate", "recorded"]
        assert statuses.count("recorded") == 1
        assert count(engine, "SELECT count(*) FROM events") == 1
        assert count(engine, "SELECT sum(failed) FROM outcome_buckets WHERE resolution = 60 "
                             "AND scope = 'model'") == 1


@pytest.mark.parametrize(("offset", "code"), [
    (-TOLERANCE - 1, "stale_timestamp"),
    (-86400 * 365, "stale_timestamp"),
    (TOLERANCE + 1, "future_timestamp"),
    (86400 * 365 * 100, "future_timestamp"),
])
def test_stale_and_future_timestamps_are_refused(
    client: TestClient, clock: ManualClock, offset: int, code: str
) -> None:
    response = post(client, BODY, signed_headers(BODY, timestamp=clock.now + offset))
    assert (response.status_code, response.json()["error"]) == (401, code)
    assert stored(client) == (0, 0)


@pytest.mark.parametrize("offset", [-TOLERANCE, TOLERANCE])
def test_timestamps_at_the_edge_of_the_tolerance_are_accepted(
    client: TestClient, clock: ManualClock, offset: int
) -> None:
    assert post(client, BODY, signed_headers(BODY, timestamp=clock.now + offset)).status_code == 200


def tampered(clock: ManualClock) -> Iterator[tuple[str, bytes, dict[str, str]]]:
    headers = signed_headers(BODY, msg_id="msg_orig", timestamp=clock.now - 10)
    yield "one byte of the body", BODY.replace(b"failed", b"faileD"), headers
    yield "status rewritten", BODY.replace(b"failed", b"succeeded"), headers
    yield "whitespace added", BODY + b" ", headers
    yield "keys reordered", json.dumps(dict(reversed(json.loads(BODY).items()))).encode(), headers
    yield "new webhook-id (to dodge dedup)", BODY, {**headers, "webhook-id": "msg_other"}
    yield "fresh timestamp (to revive a stale capture)", BODY, {
        **headers, "webhook-timestamp": str(int(clock.now))}
    yield "signature truncated", BODY, {
        **headers, "webhook-signature": headers["webhook-signature"][:-4]}


def test_anything_changed_after_signing_is_refused(client: TestClient, clock: ManualClock) -> None:
    for what, body, headers in tampered(clock):
        response = post(client, body, headers)
        assert response.status_code == 401, what
        assert response.json()["error"] in ("invalid_signature", "malformed_signature"), what
    assert stored(client) == (0, 0)


def hmac_header(key: bytes, msg_id: str, ts: int, body: bytes, version: str = "v1") -> str:
    digest = hmac.new(key, f"{msg_id}.{ts}.".encode() + body, hashlib.sha256).digest()
    return f"{version},{base64.b64encode(digest).decode()}"


def forgeries(now: int) -> Iterator[tuple[str, str]]:
    key = base64.b64decode(SECRET.removeprefix("whsec_"))
    ed = Ed25519PrivateKey.generate()
    content = f"msg_forged.{now}.".encode() + BODY
    yield "the alert webhook's secret", sign(ALERT_WEBHOOK_SECRET, "msg_forged", now, BODY)
    yield "the ingest token as HMAC key", hmac_header(TOKEN.encode(), "msg_forged", now, BODY)
    yield "the dashboard token as HMAC key", hmac_header(
        DASHBOARD_TOKEN.encode(), "msg_forged", now, BODY)
    yield "the whsec_ string itself as key", hmac_header(SECRET.encode(), "msg_forged", now, BODY)
    yield "the right key, SHA-1", "v1," + base64.b64encode(
        hmac.new(key, content, hashlib.sha1).digest()).decode()
    yield "the right HMAC, labelled v1a", hmac_header(key, "msg_forged", now, BODY, "v1a")
    yield "the right HMAC, labelled v2", hmac_header(key, "msg_forged", now, BODY, "v2")
    yield "an ed25519 key nobody configured", "v1a," + base64.b64encode(ed.sign(content)).decode()
    yield "the HMAC of the body alone", "v1," + base64.b64encode(
        hmac.new(key, BODY, hashlib.sha256).digest()).decode()


def test_signatures_made_with_keys_for_other_purposes_are_refused(
    client: TestClient, clock: ManualClock
) -> None:
    now = int(clock.now)
    for what, signature in forgeries(now):
        headers = {"content-type": "application/json", "webhook-id": "msg_forged",
                   "webhook-timestamp": str(now), "webhook-signature": signature}
        response = post(client, BODY, headers)
        assert response.status_code == 401, what
        # Offering the token as well does not turn a bad signature into a pass.
        response = post(client, BODY, {**headers, "authorization": f"Bearer {TOKEN}"})
        assert response.status_code == 401, what
    assert stored(client) == (0, 0)
    # The control: the real key, same everything, is accepted.
    good = {"content-type": "application/json", "webhook-id": "msg_forged",
            "webhook-timestamp": str(now), "webhook-signature": sign(SECRET, "msg_forged", now, BODY)}
    assert post(client, BODY, good).status_code == 200


def test_one_good_entry_among_bad_ones_is_enough_and_only_then(
    client: TestClient, clock: ManualClock
) -> None:
    """Key rotation sends several signatures; junk entries around a good one do not hurt."""
    now = int(clock.now)
    good = sign(SECRET, "msg_multi", now, BODY)
    bad = sign(ALERT_WEBHOOK_SECRET, "msg_multi", now, BODY)
    base = {"content-type": "application/json", "webhook-id": "msg_multi",
            "webhook-timestamp": str(now)}
    assert post(client, BODY, {**base, "webhook-signature": f"{bad} v1,!!! {bad}"}).status_code == 401
    assert post(client, BODY, {**base, "webhook-signature": f"{bad} v1,!!! {good}"}).status_code == 200
