"""The traffic shapes Replicate sends, as pre-signed distinct requests for wrk (bench/replay.lua).

A shape is what one prediction's webhooks look like with a given `webhook_events_filter`:
`completed` only (the filter Replicate's docs suggest), `start` + `completed`, or every event
(starting, two or three `processing` updates with growing logs and output, then the outcome).
Bodies are shaped like Replicate's API objects: a deployment, input, urls, metrics, and up to
50 lines of progress logs in the last webhooks.
"""

from __future__ import annotations

import hashlib
import json
import random
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from hookwatch.hooks.signature import sign
from hookwatch.simulate import ERRORS, prediction_id

LOG_LINES = 50


@dataclass(frozen=True)
class Shape:
    name: str
    scopes: int  # distinct models, each with its own deployment and version
    events: str  # "completed" | "start+completed" | "all"
    description: str


SHAPES = {
    shape.name: shape
    for shape in (
        Shape("completed-20", 20, "completed", "completed only, 20 models/deployments"),
        Shape("completed-1000", 1000, "completed", "completed only, 1,000 models/deployments"),
        Shape("start-completed", 20, "start+completed", "start + completed, 20 models"),
        Shape("lifecycle", 20, "all", "starting, 2-3 processing (growing logs), outcome"),
    )
}


def _ts(at: float) -> str:
    return datetime.fromtimestamp(at, UTC).isoformat(timespec="microseconds").replace(
        "+00:00", "Z")


def _logs(lines: int) -> str:
    """tqdm-style progress lines, as a diffusion model prints them."""
    out = ["Using seed: 41289", "Loading pipeline components...", "Prompt: a photo of a corgi"]
    for i in range(1, lines - 2):
        done = i * 10 // max(1, lines - 3)
        out.append(f"{i * 100 // (lines - 3):3d}%|{'#' * done}{' ' * (10 - done)}| "
                   f"{i}/{lines - 3} [00:{i // 10:02d}<00:{(lines - i) // 10:02d}, 9.87it/s]")
    return "\n".join(out[:lines]) + "\n"


def _bodies(rng: random.Random, now: float, shape: Shape) -> list[dict[str, Any]]:
    index = rng.randrange(shape.scopes)
    model = f"acme/model-{index:04d}"
    version = hashlib.sha256(model.encode()).hexdigest()
    pid = prediction_id(rng)
    created = now - rng.uniform(2.0, 5.0)
    started = created + rng.uniform(0.05, 1.5)
    predict_time = round(rng.uniform(0.5, 4.0), 6)
    base: dict[str, Any] = {
        "id": pid,
        "model": model,
        "version": version,
        "deployment": f"acme/deploy-{index:04d}",
        "input": {"prompt": "a photo of a corgi riding a skateboard", "num_outputs": 1,
                  "guidance_scale": 7.5, "num_inference_steps": LOG_LINES - 3},
        "logs": "",
        "output": None,
        "data_removed": False,
        "error": None,
        "status": "starting",
        "created_at": _ts(created),
        "started_at": None,
        "completed_at": None,
        "source": "api",
        "urls": {
            "cancel": f"https://api.replicate.com/v1/predictions/{pid}/cancel",
            "get": f"https://api.replicate.com/v1/predictions/{pid}",
            "stream": f"https://stream.replicate.com/v1/files/{pid}",
            "web": f"https://replicate.com/p/{pid}",
        },
        "webhook": "https://hooks.example.com/hooks/replicate",
        "webhook_events_filter": (["completed"] if shape.events == "completed"
                                  else ["start", "completed"] if shape.events == "start+completed"
                                  else ["start", "output", "logs", "completed"]),
        "metrics": {},
    }
    bodies = [dict(base)]
    updates = rng.choice((2, 3))
    for step in range(1, updates + 1):
        bodies.append({**base, "status": "processing", "started_at": _ts(started),
                       "logs": _logs(LOG_LINES * step // (updates + 1))})
    final = {**base, "started_at": _ts(started), "completed_at": _ts(started + predict_time),
             "logs": _logs(LOG_LINES),
             "metrics": {"predict_time": predict_time,
                         "total_time": round(started + predict_time - created, 6)}}
    if rng.random() < 0.1:
        final.update(status="failed", error=rng.choice(ERRORS))
    else:
        final.update(status="succeeded",
                     output=[f"https://replicate.delivery/xezq/{pid}/out-0.webp"])
    bodies.append(final)
    if shape.events == "completed":
        return bodies[-1:]
    if shape.events == "start+completed":
        return [bodies[0], bodies[-1]]
    return bodies


def requests(shape: Shape, count: int, secret: str, now: float, seed: int = 7,
             prefix: str = "msg") -> Iterator[str]:
    """count TSV lines (id, timestamp, signature, body), whole predictions in order."""
    rng = random.Random(seed)
    ts = int(now)
    n = 0
    while n < count:
        for body in _bodies(rng, now, shape):
            raw = json.dumps(body, separators=(",", ":"))
            msg_id = f"{prefix}_{n:09d}"
            yield f"{msg_id}\t{ts}\t{sign(secret, msg_id, ts, raw.encode())}\t{raw}\n"
            n += 1


def write_requests(path: Path, shape: Shape, count: int, secret: str, now: float,
                   seed: int = 7, prefix: str = "msg") -> None:
    with path.open("w") as out:
        out.writelines(requests(shape, count, secret, now, seed, prefix))
