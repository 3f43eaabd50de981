"""Property tests on the receiver's raw input: never a 5xx, nothing stored for a refusal.

Bodies are signed with the real secret, so hostile bytes get past authentication and reach the
parser and the writer, where a crash would hurt. HOOKWATCH_FUZZ_EXAMPLES raises the example
count (default 100 per property); `pytest -s` prints requests tried per status.
"""

from __future__ import annotations

import json
import os
import uuid
from collections import Counter
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import text

from tests.conftest import ManualClock, signed_headers

EXAMPLES = int(os.environ.get("HOOKWATCH_FUZZ_EXAMPLES", "100"))

pytestmark = pytest.mark.slow
FUZZ = settings(
    max_examples=EXAMPLES,
    deadline=None,
    database=None,  # nothing written into the tree
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
ACCEPTED_OR_REFUSED = {200, 400, 401, 413, 415, 422}

# Every code point, lone surrogates and NUL included.
ANY_CHAR = st.characters(min_codepoint=0, max_codepoint=0x10FFFF, exclude_categories=())
HOSTILE_TEXT = st.one_of(
    st.text(ANY_CHAR, max_size=40),
    st.sampled_from([
        "\x00", "a\x00b", "\ud800", "x\udfff", "<script>alert(1)</script>", "'; DROP TABLE events;--",
        "%s%s%n", "\u202e", "\ufeff", "😀" * 50, "a" * 300, "", " ",
    ]),
)
HUGE_NUMBERS = st.one_of(
    st.integers(min_value=-(10**40), max_value=10**40),
    st.floats(allow_nan=True, allow_infinity=True),
    st.sampled_from([1e308, -1e308, 5e-324, 2**63, 2**64, -(2**63) - 1, 10**400]),
)
JSON_VALUES = st.recursive(
    st.none() | st.booleans() | HUGE_NUMBERS | HOSTILE_TEXT,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(HOSTILE_TEXT, inner, max_size=4),
    max_leaves=20,
)
STATUSES = st.sampled_from(["starting", "processing", "succeeded", "failed", "canceled",
                            "aborted", "weird_new_status"])
BAD_STATUSES = st.one_of(st.sampled_from(["SUCCEEDED", "", "x" * 40, "failed\x00"]), JSON_VALUES)
PRINTABLE_ID = st.text(st.characters(min_codepoint=0x21, max_codepoint=0x7E), min_size=1,
                       max_size=30)
# id and status are mostly valid, so most bodies get as far as the writer; the optional
# "breakers" replace them with anything at all.
PREDICTIONS = st.fixed_dictionaries(
    {"id": PRINTABLE_ID, "status": STATUSES},
    optional={
        "model": st.one_of(HOSTILE_TEXT, JSON_VALUES),
        "version": st.one_of(HOSTILE_TEXT, st.just("hidden")),
        "deployment": HOSTILE_TEXT,
        "error": JSON_VALUES,
        "logs": JSON_VALUES,
        "input": JSON_VALUES,
        "output": JSON_VALUES,
        "metrics": st.one_of(st.fixed_dictionaries({"predict_time": JSON_VALUES}), JSON_VALUES),
        "created_at": st.one_of(HOSTILE_TEXT, st.sampled_from([
            "0001-01-01T00:00:00+14:00", "9999-12-31T23:59:59.999999999Z",
            "2026-11-28T04:00:00.123456789Z", "2026-02-30T00:00:00Z"])),
        "started_at": st.one_of(HOSTILE_TEXT, st.sampled_from(["9999-12-31T23:59:59-14:00"])),
        "completed_at": JSON_VALUES,
    },
)
CONTENT_TYPES = st.sampled_from([
    "application/json", "application/json; charset=utf-8", "application/vnd.api+json",
    "text/plain", "application/x-www-form-urlencoded", "", "application/json\x7f",
])


def dumps(value: Any) -> bytes:
    """JSON with NaN/Infinity and \\uXXXX escapes for surrogates and NUL, as a hostile sender
    might write it."""
    return json.dumps(value, allow_nan=True).encode()


class Fuzz:
    """Sends signed bodies and checks each answer against the rows it left behind."""

    def __init__(self, client: TestClient, clock: ManualClock, name: str) -> None:
        self.client = client
        self.clock = clock
        self.name = name
        self.statuses: Counter[int] = Counter()

    def rows(self) -> tuple[int, int]:
        with self.client.app.state.runtime.engine.connect() as conn:  # type: ignore[attr-defined]
            events, predictions = conn.execute(text(
                "SELECT (SELECT count(*) FROM events), (SELECT count(*) FROM predictions)"
            )).one()
        return int(events), int(predictions)

    def post(
        self, body: bytes, *, content_type: str = "application/json", query: str = "",
        headers: dict[str, str] | None = None, sign: bool = True,
    ) -> int:
        sent = signed_headers(body, timestamp=self.clock.now) if sign else {}
        sent["content-type"] = content_type
        sent.update(headers or {})
        # Header values travel as bytes: anything from 0x20 to 0xff, as a raw client may send.
        raw_headers = {k: v.encode("latin-1") for k, v in sent.items()}
        before = self.rows()
        response = self.client.post("/hooks/replicate" + query, content=body, headers=raw_headers)
        after = self.rows()
        self.statuses[response.status_code] += 1
        assert response.status_code in ACCEPTED_OR_REFUSED, (response.status_code, response.text)
        assert response.headers["content-type"] == "application/json"
        answer = response.json()
        if response.status_code == 200:
            assert after[0] == before[0] + 1, "an accepted webhook is one new event"
            assert answer["status"] == "recorded"
        else:
            assert after == before, f"refused with {response.status_code} but stored"
            assert set(answer) == {"error", "detail"}
        return response.status_code

    def finish(self) -> None:
        # Still up and still working after everything above.
        body = b'{"id":"after-fuzz-' + uuid.uuid4().hex.encode() + b'","status":"succeeded"}'
        assert self.post(body) == 200
        assert self.client.get("/healthz").status_code == 200
        total = sum(self.statuses.values())
        print(f"\nfuzz {self.name}: {total} requests, by status {dict(sorted(self.statuses.items()))}")


@pytest.fixture
def fuzz(
    app_factory: Callable[..., FastAPI], clock: ManualClock, request: pytest.FixtureRequest
) -> Iterator[Callable[..., Fuzz]]:
    made: list[tuple[TestClient, Fuzz]] = []

    def make(database_url: str | None = None) -> Fuzz:
        client = TestClient(
            app_factory(database_url=database_url, sqlite_synchronous="NORMAL", max_body_bytes=65536)
        )
        client.__enter__()
        fuzzer = Fuzz(client, clock, request.node.name)
        made.append((client, fuzzer))
        return fuzzer

    yield make
    for client, fuzzer in made:
        fuzzer.finish()
        client.__exit__(None, None, None)


def test_arbitrary_signed_bytes(fuzz: Callable[..., Fuzz]) -> None:
    fuzzer = fuzz()

    @FUZZ
    @given(body=st.binary(max_size=4096), content_type=CONTENT_TYPES)
    def prop(body: bytes, content_type: str) -> None:
        fuzzer.post(body, content_type=content_type)

    prop()


def test_prediction_shaped_json(db_url: str, fuzz: Callable[..., Fuzz]) -> None:
    """Valid JSON of every shape, with NUL, lone surrogates, huge numbers, odd timestamps;
    on PostgreSQL too, which refuses NUL in text where SQLite does not."""
    fuzzer = fuzz(db_url)

    @FUZZ
    @given(
        doc=st.one_of(PREDICTIONS, PREDICTIONS, PREDICTIONS, JSON_VALUES),
        extra=st.dictionaries(HOSTILE_TEXT, JSON_VALUES, max_size=3),
        breakers=st.one_of(
            st.just({}), st.just({}), st.just({}),
            st.fixed_dictionaries({}, optional={"id": JSON_VALUES, "status": BAD_STATUSES}),
        ),
    )
    def prop(doc: Any, extra: dict[str, Any], breakers: dict[str, Any]) -> None:
        if isinstance(doc, dict):
            doc = {**extra, **doc, **breakers}
        fuzzer.post(dumps(doc))

    prop()
    assert fuzzer.statuses[200] > 0, "the strategy must reach the writer"


def test_deep_nesting_and_duplicate_keys(fuzz: Callable[..., Fuzz]) -> None:
    fuzzer = fuzz()

    @FUZZ
    @given(
        depth=st.integers(min_value=1, max_value=5000),
        where=st.sampled_from(["top", "error", "logs", "input", "metrics"]),
        opener=st.sampled_from(["[", '{"a":']),
        ids=st.lists(st.sampled_from(['"a"', '"b"', "1", "null", '"x\\u0000"']), min_size=1,
                     max_size=3),
        statuses=st.lists(st.sampled_from(['"succeeded"', '"starting"', "[]", '"Failed"']),
                          min_size=1, max_size=3),
    )
    def prop(depth: int, where: str, opener: str, ids: list[str], statuses: list[str]) -> None:
        closer = "]" if opener == "[" else "}"
        nested = opener * depth + "1" + closer * depth
        keys = [f'"id":{v}' for v in ids] + [f'"status":{v}' for v in statuses]
        if where == "top":
            raw = nested
        else:
            keys.append(f'"{where}":{nested}')
            raw = "{" + ",".join(keys) + "}"
        fuzzer.post(raw.encode())

    prop()


def test_invalid_utf8_and_stray_bytes(fuzz: Callable[..., Fuzz]) -> None:
    fuzzer = fuzz()

    @FUZZ
    @given(junk=st.binary(min_size=1, max_size=8), at=st.sampled_from(["id", "model", "error"]))
    def prop(junk: bytes, at: str) -> None:
        body = {"id": "utf8-test", "status": "failed", "model": "m", "error": "e"}
        raw = json.dumps(body).encode().replace(f'"{at}": "'.encode(), f'"{at}": "'.encode() + junk)
        fuzzer.post(raw)

    prop()


HEADER_TEXT = st.text(st.characters(min_codepoint=0x20, max_codepoint=0xFF,
                                    exclude_characters="\x7f"), max_size=80)


def test_forged_headers_are_refused_and_store_nothing(fuzz: Callable[..., Fuzz]) -> None:
    """Whatever the webhook-* and Authorization headers hold, without the secret it is a 401."""
    fuzzer = fuzz()
    body = b'{"id":"forged","status":"succeeded","model":"m"}'

    @FUZZ
    @given(
        msg_id=HEADER_TEXT,
        timestamp=st.one_of(HEADER_TEXT, st.integers(min_value=-(10**20), max_value=10**20).map(str)),
        signature=st.one_of(
            HEADER_TEXT,
            st.lists(st.sampled_from(["v1,", "v1a,", "v2,", "v1,AAAA", "v1,====", "v1a,AAAA",
                                      "v1,dGVzdA=="]), max_size=50).map(" ".join),
        ),
        authorization=st.one_of(st.none(), HEADER_TEXT, HEADER_TEXT.map("Bearer ".__add__)),
        which=st.sets(st.sampled_from(["webhook-id", "webhook-timestamp", "webhook-signature",
                                       "svix-id"])),
    )
    def prop(msg_id: str, timestamp: str, signature: str, authorization: str | None,
             which: set[str]) -> None:
        values = {"webhook-id": msg_id, "svix-id": msg_id, "webhook-timestamp": timestamp,
                  "webhook-signature": signature}
        headers = {name: values[name] for name in which}
        if authorization is not None:
            headers["authorization"] = authorization
        status = fuzzer.post(body, headers=headers, sign=False)
        assert status == 401

    prop()


def test_query_labels(fuzz: Callable[..., Fuzz]) -> None:
    fuzzer = fuzz()

    @FUZZ
    @given(
        params=st.dictionaries(
            st.sampled_from(["model", "deployment", "version", "x"]),
            st.one_of(st.text(ANY_CHAR, max_size=80), st.text(ANY_CHAR, min_size=250, max_size=300)),
            max_size=3,
        ),
    )
    def prop(params: dict[str, str]) -> None:
        from urllib.parse import quote

        query = "?" + "&".join(
            f"{k}={quote(v.encode('utf-8', 'surrogatepass'))}" for k, v in params.items()
        )
        fuzzer.post(b'{"id":"q","status":"processing"}', query=query)

    prop()
