"""The HTTP calls the demo makes: Cog predictions, readiness probes, hookwatch's webhook URL."""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import httpx

from hookwatch.demo.driver import SubmitError

# start + completed is enough for hookwatch to see every prediction begin and end; output and
# logs events would only multiply the webhooks per prediction.
WEBHOOK_EVENTS: tuple[str, ...] = ("start", "completed")


def cog_ready(client: httpx.Client, base_url: str) -> bool:
    r = client.get(f"{base_url}/health-check", timeout=2.0)
    return r.status_code == 200 and r.json().get("status") == "READY"


def hookwatch_ready(client: httpx.Client, base_url: str) -> bool:
    return client.get(f"{base_url}/healthz", timeout=2.0).status_code == 200


def webhook_url(host: str, port: int, model: str, deployment: str) -> str:
    query = httpx.QueryParams({"model": model, "deployment": deployment})
    return f"http://{host}:{port}/hooks/replicate?{query}"


def predict(
    client: httpx.Client,
    cog_url: str,
    model_input: Mapping[str, Any],
    *,
    webhook: str | None,
    prediction_id: str | None = None,
    events: Sequence[str] = WEBHOOK_EVENTS,
    timeout: float = 60.0,
    busy_wait: float = 2.0,
    sleep: Callable[[float], None] = time.sleep,
) -> dict[str, Any]:
    """One synchronous prediction on the Cog server; its webhooks go to `webhook`."""
    body: dict[str, Any] = {"input": dict(model_input)}
    if prediction_id is not None:
        body["id"] = prediction_id
    if webhook is not None:
        body["webhook"] = webhook
        body["webhook_events_filter"] = list(events)
    # coglet hands its slot back a moment after it answers, so a request sent right after the
    # previous answer can meet a 409: try again for up to busy_wait seconds.
    pause = 0.02
    waited = 0.0
    while True:
        try:
            r = client.post(f"{cog_url}/predictions", json=body, timeout=timeout)
        except httpx.HTTPError as exc:
            raise SubmitError(f"{type(exc).__name__}: {exc}") from exc
        if r.status_code != 409 or waited >= busy_wait:
            break
        sleep(pause)
        waited += pause
        pause = min(pause * 2, 0.5)
    if r.status_code == 409:
        raise SubmitError("the Cog server is busy with another prediction (409)")
    if r.status_code != 200:
        raise SubmitError(f"the Cog server answered {r.status_code}: {r.text[:200]}")
    result: dict[str, Any] = r.json()
    return result
