"""Slow bodies: connections to `hookwatch serve` that each declare a body just under 1 MiB and
trickle it in within the deadline. What the headers can refuse (no credentials, a wrong token,
a stale timestamp) is refused at once, before the body; forged signatures, which need the
body, are admitted only up to the buffered-bytes budget (8 MiB here) and the rest get a quick
503 with Retry-After. Memory stays bounded either way. `pytest -s` prints the figures;
bench/bench_slow_bodies.py runs the issue's 400 connections per kind.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.reliability.bodyprobe import run_body_probe

pytestmark = pytest.mark.slow

MIB = 1024 * 1024
CONNECTIONS = 100


@pytest.mark.parametrize(("kind", "code"), [
    ("none", "missing_credentials"), ("bad-token", "invalid_token"), ("stale", "stale_timestamp"),
])
@pytest.mark.timeout(90)
def test_what_the_headers_refuse_is_refused_before_the_body(
    tmp_path: Path, kind: str, code: str
) -> None:
    figures = run_body_probe(tmp_path, kind, CONNECTIONS, trickle=4.0)
    print("\n" + figures.summary())
    assert figures.answers == {f"401 {code}": CONNECTIONS}, figures.summary()
    # Answered on the head: long before the 4 s the body takes to trickle in.
    assert figures.slowest < 2.0, figures.summary()
    # 100 bodies held would be 100 MiB; refused on the head, a few MiB of connections.
    assert figures.peak - figures.before < 30 * MIB, figures.summary()


@pytest.mark.timeout(90)
def test_forged_signatures_are_bounded_by_the_byte_budget(tmp_path: Path) -> None:
    figures = run_body_probe(tmp_path, "forged", CONNECTIONS, trickle=4.0,
                             env={"HOOKWATCH_MAX_BUFFERED_BYTES": str(8 * MIB)})
    print("\n" + figures.summary())
    admitted = figures.answers["401 invalid_signature"]
    busy = figures.answers["503 server_busy"]
    assert admitted + busy == CONNECTIONS, figures.summary()
    assert 1 <= admitted <= 8, figures.summary()  # 8 MiB holds 8 bodies of just under 1 MiB
    assert figures.peak - figures.before < 40 * MIB, figures.summary()
