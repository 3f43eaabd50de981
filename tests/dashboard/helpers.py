"""Data for the dashboard tests: signed webhooks over HTTP, history through the real writer,
a config whose notifiers are local HTTP receivers."""

from __future__ import annotations

import itertools
import random
import re
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import orjson
from fastapi import FastAPI

from hookwatch.config import Config, load_config
from hookwatch.storage.migrate import upgrade
from hookwatch.storage.writer import Writer
from tests.alerts.helpers import event
from tests.conftest import ManualClock, signed_headers

_ids = itertools.count(1)
OOM = "CUDA out of memory. Tried to allocate {n:.2f} GiB (GPU 0; 79.15 GiB total capacity)"


def ts(value: float) -> str:
    return datetime.fromtimestamp(value, UTC).isoformat().replace("+00:00", "Z")


def body(
    status: str,
    *,
    at: float,
    model: str = "acme/sdxl",
    deployment: str | None = "acme/sdxl-prod",
    version: str = "5c7d5dc6dd8bf75c1acaa8565735e7986bc5b66206b55cca93cb72c9bf15ccaa",
    error: str | None = None,
    logs: str = "",
    prediction_id: str | None = None,
    predict_time: float = 1.5,
    queue_time: float = 0.4,
    payload: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """A Replicate prediction body as sent with the webhook (terminal when status says so)."""
    pid = prediction_id or f"pred{next(_ids):06d}"
    terminal = status not in ("starting", "processing")
    created = at - predict_time - queue_time
    out: dict[str, Any] = {
        "id": pid, "model": model, "version": version, "status": status,
        "input": payload if payload is not None else {"prompt": "a corgi in the snow"},
        "output": ["https://replicate.delivery/out.png"] if status == "succeeded" else None,
        "error": error, "logs": logs, "created_at": ts(created),
        "started_at": ts(created + queue_time) if status != "starting" else None,
        "completed_at": ts(at) if terminal else None,
        "metrics": {"predict_time": predict_time} if terminal else {},
        "urls": {"get": f"https://api.replicate.com/v1/predictions/{pid}"},
    }
    if deployment:
        out["deployment"] = deployment
    return out


def send(target: str | Any, clock: ManualClock, prediction: dict[str, Any]) -> None:
    """POST one signed webhook: to a LiveServer URL, or through a TestClient."""
    raw = orjson.dumps(prediction)
    headers = signed_headers(raw, timestamp=clock.now)
    if isinstance(target, str):
        answer = httpx.post(f"{target}/hooks/replicate", content=raw, headers=headers)
    else:
        answer = target.post("/hooks/replicate", content=raw, headers=headers)
    assert answer.status_code == 200, answer.text


def ingest(app: FastAPI, clock: ManualClock, events: list[Any]) -> None:
    """A batch through the real writer (storage.writer), at the clock's time."""
    if events:
        Writer(app.state.runtime.engine, clock=clock).commit(events)


SCOPES = [
    # model, deployment, version, usual daily error rate
    ("acme/sdxl", "acme/sdxl-prod", "5c7d5dc6", 0.001),
    ("acme/llama-3-70b", "acme/llama-prod", "a8f3e1b2", 0.002),
    ("acme/whisper-large", None, "9e0b77c1", 0.0),
    ("stability/sd3-medium", "stability/sd3-batch", "c41d09aa", 0.006),
    ("meta/musicgen", None, "671ac645", 0.0),
]


def history(app: FastAPI, clock: ManualClock, *, days: int = 90, seed: int = 3) -> None:
    """`days` days of daily traffic, then 24 hours of hourly traffic, ending at clock.now.

    Moves the clock back, then forward to where it was; the writer stamps buckets with it.
    Call it before the app starts: the dashboard keeps closed buckets once read, because in
    a running service the past no longer changes (storage.window_cache).
    """
    upgrade(app.state.runtime.engine)
    rng = random.Random(seed)
    end = clock.now
    clock.now = end - days * 86400
    while clock.now < end - 86400:
        batch = []
        for model, deployment, version, rate in SCOPES:
            bad_day = rng.random() < 0.03
            for _ in range(rng.randrange(30, 60)):
                failed = rng.random() < (rng.choice([0.03, 0.12]) if bad_day else rate)
                batch.append(event(
                    "failed" if failed else "succeeded", at=clock.now, model=model,
                    deployment=deployment, version=version,
                    error=OOM.format(n=rng.uniform(1, 20)) if failed else None,
                    predict_time=rng.uniform(0.5, 4), queue_time=rng.uniform(0.05, 1.5),
                ))
        ingest(app, clock, batch)
        clock.advance(86400)
    clock.now = end - 86400 + 60
    hour = 0
    while clock.now < end - 600:
        batch = []
        for model, deployment, version, rate in SCOPES:
            wave = 0.12 if model == "stability/sd3-medium" and 14 <= hour <= 16 else rate
            for _ in range(rng.randrange(3, 8)):
                failed = rng.random() < wave
                batch.append(event(
                    "failed" if failed else "succeeded", at=clock.now, model=model,
                    deployment=deployment, version=version,
                    error="RuntimeError: NaN in output tensor" if failed else None,
                    predict_time=rng.uniform(0.5, 4), queue_time=rng.uniform(0.05, 1.5),
                ))
        ingest(app, clock, batch)
        clock.advance(3600)
        hour += 1
    clock.now = end


def config(tmp_path: Path, notifiers: dict[str, str], *, min_predictions: int = 5) -> Config:
    """A deployment error-rate rule (over 20% in 10 minutes) notifying webhook receivers, and
    a model one that must hold for 5 minutes first (so it shows pending before it fires)."""
    tables = "".join(
        f'[notifiers.{name}]\ntype = "webhook"\nurl = "{url}"\n'
        'secret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"\n\n'
        for name, url in notifiers.items()
    )
    notify = ", ".join(f'"{n}"' for n in notifiers)
    text = tables + (
        '[[rules]]\nname = "deployment-error-rate"\nkind = "error_rate"\nscope = "deployment"\n'
        f'window = "10m"\nthreshold = 0.2\nmin_predictions = {min_predictions}\n'
        f'severity = "critical"\nnotify = [{notify}]\n\n'
        '[[rules]]\nname = "model-error-rate"\nkind = "error_rate"\nscope = "model"\n'
        f'window = "10m"\nthreshold = 0.2\nmin_predictions = {min_predictions}\n'
        'for = "5m"\nseverity = "warning"\n'
    )
    path = tmp_path / "hookwatch.toml"
    path.write_text(text)
    return load_config(path)


def recent(target: str | Any, clock: ManualClock, *, minutes: int = 50, seed: int = 4) -> None:
    """`minutes` more of traffic for every scope, as signed webhooks over HTTP, every 5 min."""
    rng = random.Random(seed)
    for _ in range(minutes // 5):
        for model, deployment, version, _rate in SCOPES:
            for _ in range(rng.randrange(1, 3)):
                send(target, clock, body(
                    "succeeded", at=clock.now, model=model, deployment=deployment,
                    version=version, predict_time=rng.uniform(0.4, 6.0),
                    queue_time=rng.uniform(0.05, 2.0),
                ))
        clock.advance(300)


def burst(target: str | Any, clock: ManualClock, *, total: int = 14) -> None:
    """acme/sdxl-prod starts failing with CUDA OOM: two of every three, 20 s apart."""
    sdxl = SCOPES[0]
    for i in range(total):
        clock.advance(20)
        failed = i % 3 != 2
        send(target, clock, body(
            "failed" if failed else "succeeded", at=clock.now, model=sdxl[0],
            deployment=sdxl[1], version=sdxl[2], predict_time=1.2 + i * 0.3,
            error=OOM.format(n=2.5 + i) if failed else None,
            logs="loading weights\nstep 1/30\nstep 2/30\n" + ("Traceback ...\n" if failed else ""),
        ))


def csrf(client: Any, path: str = "/") -> str:
    """The CSRF token a page carries (every form of the dashboard sends it back)."""
    page = client.get(path, headers={"accept": "text/html"}).text
    found = re.search(r'<meta name="csrf-token" content="([^"]+)">', page)
    assert found, "the page carries no CSRF token"
    return found.group(1)
