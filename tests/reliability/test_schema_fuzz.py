"""schemathesis against the app's own OpenAPI schema, every operation: never a 5xx.

Positive (schema-valid) and negative (schema-violating) cases, sent over real HTTP to a real
uvicorn; the webhook carries the ingest token so its bodies reach the parser and the writer.
HOOKWATCH_SCHEMA_EXAMPLES sets the examples per operation and mode (default 15); `pytest -s`
prints the requests tried per status.
"""

from __future__ import annotations

import contextlib
import json
import os
from collections import Counter
from collections.abc import Callable
from typing import Any

import pytest
import requests
import schemathesis
from fastapi import FastAPI
from hypothesis import HealthCheck, given, settings
from hypothesis.errors import Unsatisfiable
from schemathesis import GenerationMode
from schemathesis.config import GenerationConfig

from tests.conftest import TOKEN, LiveServer, ManualClock, signed_headers

EXAMPLES = int(os.environ.get("HOOKWATCH_SCHEMA_EXAMPLES", "15"))

pytestmark = pytest.mark.slow


def seed(url: str, clock: ManualClock) -> None:
    """A few predictions, so lookups by id and filters find something."""
    for i, status in enumerate(["starting", "failed", "succeeded"]):
        body = json.dumps({"id": f"seed-{i}", "status": status, "model": "acme/sdxl",
                           "deployment": "acme/sdxl-prod", "error": "boom"}).encode()
        response = requests.post(url + "/hooks/replicate", data=body,
                                 headers=signed_headers(body, timestamp=clock.now), timeout=10)
        assert response.status_code == 200


def test_no_documented_operation_answers_5xx(
    app_factory: Callable[..., FastAPI], clock: ManualClock
) -> None:
    app = app_factory()
    statuses: Counter[int] = Counter()
    per_operation: dict[str, Counter[int]] = {}
    failures: list[str] = []
    with LiveServer(app) as server:
        seed(server.url, clock)
        spec: dict[str, Any] = requests.get(server.url + "/openapi.json", timeout=10).json()
        assert "/hooks/replicate" in spec["paths"], "the webhook must be documented"
        schema = schemathesis.openapi.from_dict(spec)
        session = requests.Session()
        operations = [result.ok() for result in schema.get_all_operations()]  # type: ignore[union-attr]
        assert len(operations) >= 5
        modes = [GenerationMode.POSITIVE, GenerationMode.NEGATIVE]
        for operation in operations:
            seen = per_operation.setdefault(operation.label, Counter())

            def call(case: schemathesis.Case, mode: GenerationMode,
                     seen: Counter[int] = seen) -> None:
                if mode is GenerationMode.POSITIVE and case.headers:
                    case.headers.pop("webhook-signature", None)  # let the token reach the parser
                response = case.call(base_url=server.url, session=session, timeout=10,
                                     headers={"authorization": f"Bearer {TOKEN}"})
                statuses[response.status_code] += 1
                seen[response.status_code] += 1
                if response.status_code >= 500:
                    failures.append(f"{case.operation.label} -> {response.status_code}: "
                                    f"{case.as_curl_command()}")

            # Boundary values (schemathesis' coverage phase: deterministic), then random ones.
            for case in schema.iter_coverage_cases(
                operation, generation_modes=modes, generation_config=GenerationConfig()
            ):
                call(case, case._meta.generation.mode if case._meta else GenerationMode.NEGATIVE)
            for mode in modes:

                @settings(max_examples=EXAMPLES, deadline=None, database=None, derandomize=True,
                          suppress_health_check=list(HealthCheck))
                @given(case=operation.as_strategy(generation_mode=mode))
                def fuzz(case: schemathesis.Case) -> None:
                    call(case, mode)  # noqa: B023 (runs inside this iteration)

                # Unsatisfiable: e.g. no schema-violating request exists for /healthz.
                with contextlib.suppress(Unsatisfiable):
                    fuzz()
        assert requests.get(server.url + "/healthz", timeout=10).status_code == 200
    print(f"\nschemathesis: {sum(statuses.values())} requests over {len(operations)} operations, "
          f"by status {dict(sorted(statuses.items()))}")
    for label, seen in per_operation.items():
        print(f"  {label}: {dict(sorted(seen.items()))}")
    assert failures == [], "\n".join(failures[:10])
