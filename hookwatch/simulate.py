"""`hookwatch simulate`: Replicate-shaped, signed prediction lifecycles sent at a steady rate."""

from __future__ import annotations

import asyncio
import random
import secrets
import string
import sys
import time
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import httpx
import orjson

from hookwatch.hooks.signature import sign

ERRORS = (
    "CUDA out of memory. Tried to allocate 2.50 GiB (GPU 0; 79.15 GiB total capacity)",
    "Prediction failed: RuntimeError: shape mismatch in layer 12",
    "NSFW content detected. Try running it again, or try a different prompt.",
)


def _ts(at: float) -> str:
    return datetime.fromtimestamp(at, UTC).isoformat().replace("+00:00", "Z")


def prediction_id(rng: random.Random) -> str:
    return "".join(rng.choice(string.ascii_lowercase + string.digits) for _ in range(26))


def lifecycle(
    *,
    rng: random.Random,
    now: float,
    model: str,
    deployment: str | None,
    version: str,
    fail: bool,
) -> list[dict[str, Any]]:
    """The bodies Replicate sends for one prediction: starting, processing, then the outcome."""
    pid = prediction_id(rng)
    base: dict[str, Any] = {
        "id": pid,
        "model": model,
        "version": version,
        "input": {"prompt": "a photo of a corgi"},
        "output": None,
        "error": None,
        "logs": "",
        "metrics": {},
        "created_at": _ts(now - 1.5),
        "started_at": None,
        "completed_at": None,
        "urls": {"get": f"https://api.replicate.com/v1/predictions/{pid}"},
    }
    if deployment:
        base["deployment"] = deployment
    starting = {**base, "status": "starting"}
    processing = {**base, "status": "processing", "started_at": _ts(now - 1.0), "logs": "step 1\n"}
    predict_time = round(rng.uniform(0.2, 3.0), 6)
    final = {
        **processing,
        "completed_at": _ts(now),
        "metrics": {"predict_time": predict_time},
        "logs": "step 1\nstep 2\n",
    }
    if fail:
        final.update(status="failed", error=rng.choice(ERRORS))
    else:
        final.update(status="succeeded", output=["https://replicate.delivery/out.png"])
    return [starting, processing, final]


def signed_request(secret: str | None, token: str | None, body: bytes, now: int) -> dict[str, str]:
    headers = {"content-type": "application/json", "user-agent": "hookwatch-simulate"}
    if secret:
        msg_id = "msg_" + secrets.token_hex(12)
        headers.update({
            "webhook-id": msg_id,
            "webhook-timestamp": str(now),
            "webhook-signature": sign(secret, msg_id, now, body),
        })
    elif token:
        headers["authorization"] = f"Bearer {token}"
    return headers


@dataclass
class Tally:
    sent: int = 0
    statuses: Counter[int] = field(default_factory=Counter)
    errors: Counter[str] = field(default_factory=Counter)
    latencies: list[float] = field(default_factory=list)

    @property
    def accepted(self) -> int:
        return sum(n for code, n in self.statuses.items() if 200 <= code < 300)

    @property
    def refused(self) -> int:
        return self.sent - self.accepted

    def percentile(self, q: float) -> float:
        if not self.latencies:
            return 0.0
        ordered = sorted(self.latencies)
        return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


async def run(
    *,
    url: str,
    secret: str | None,
    token: str | None,
    rate: float,
    duration: float,
    failure_rate: float,
    model: str,
    deployment: str | None,
    version: str = "5c7d5dc6dd8bf75c1acaa8565735e7986bc5b66206b55cca93cb72c9bf15ccaa",
    seed: int | None = None,
    out: Any = sys.stdout,
) -> Tally:
    """Send about rate*duration webhooks; each lifecycle is three, in order."""
    rng = random.Random(seed)
    tally = Tally()
    interactive = hasattr(out, "isatty") and out.isatty()
    start = time.monotonic()
    # Whole lifecycles of three, so the progress line's total is what is sent.
    total = 3 * max(1, round(rate * duration / 3))
    limits = httpx.Limits(max_connections=64, max_keepalive_connections=64)
    async with httpx.AsyncClient(timeout=10.0, limits=limits) as client:

        async def send_lifecycle(bodies: list[dict[str, Any]]) -> None:
            for body in bodies:
                raw = orjson.dumps(body)
                headers = signed_request(secret, token, raw, int(time.time()))
                began = time.perf_counter()
                try:
                    response = await client.post(url, content=raw, headers=headers)
                    tally.statuses[response.status_code] += 1
                    if response.status_code >= 300:
                        tally.errors[_reason(response)] += 1
                except httpx.HTTPError as exc:
                    tally.errors[type(exc).__name__] += 1
                tally.latencies.append(time.perf_counter() - began)
                tally.sent += 1

        tasks: set[asyncio.Task[None]] = set()
        scheduled = 0
        last_print = 0.0
        while scheduled < total:
            elapsed = time.monotonic() - start
            due = min(total, int(elapsed * rate) + 3)
            while scheduled < due:
                bodies = lifecycle(
                    rng=rng, now=time.time(), model=model, deployment=deployment,
                    version=version, fail=rng.random() < failure_rate,
                )
                task = asyncio.create_task(send_lifecycle(bodies))
                tasks.add(task)
                task.add_done_callback(tasks.discard)
                scheduled += 3
            if elapsed - last_print >= (0.2 if interactive else 2.0):
                last_print = elapsed
                _progress(out, tally, total, elapsed, interactive)
            await asyncio.sleep(0.01)
        if tasks:
            await asyncio.gather(*tasks)
        _progress(out, tally, total, time.monotonic() - start, interactive)
        if interactive:
            out.write("\n")
    return tally


async def wait_until_up(url: str, *, within: float = 10.0) -> bool:
    """True once anything answers HTTP at `url` (a GET on the webhook path is a 405): a
    `simulate` started right after `serve &` would otherwise lose its first second to refused
    connections."""
    deadline = time.monotonic() + within
    async with httpx.AsyncClient(timeout=2.0) as client:
        while True:
            try:
                await client.get(url)
                return True
            except httpx.TransportError:
                if time.monotonic() >= deadline:
                    return False
                await asyncio.sleep(0.2)


def _reason(response: httpx.Response) -> str:
    try:
        return f"{response.status_code} {response.json().get('error', '')}".strip()
    except ValueError:
        return str(response.status_code)


def _progress(out: Any, tally: Tally, total: int, elapsed: float, interactive: bool) -> None:
    done = min(tally.sent, total)
    width = 30
    filled = int(width * done / total)
    bar = "#" * filled + "-" * (width - filled)
    line = (
        f"[{bar}] {done}/{total} sent, {tally.accepted} accepted, {tally.refused} refused, "
        f"{tally.sent / elapsed if elapsed else 0:.0f}/s"
    )
    out.write(("\r" + line) if interactive else (line + "\n"))
    out.flush()


def summary(tally: Tally, elapsed: float) -> str:
    lines = [
        f"sent {tally.sent}, accepted {tally.accepted}, refused {tally.refused} "
        f"in {elapsed:.1f}s ({tally.sent / elapsed if elapsed else 0:.0f}/s)",
        f"latency p50 {tally.percentile(0.5) * 1000:.1f} ms, "
        f"p95 {tally.percentile(0.95) * 1000:.1f} ms, p99 {tally.percentile(0.99) * 1000:.1f} ms",
    ]
    for reason, count in tally.errors.most_common(5):
        lines.append(f"  {count} x {reason}")
    return "\n".join(lines)
