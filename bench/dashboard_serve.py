"""The dashboard at high cardinality, probed from outside (issue 20): a real `hookwatch serve`
on 127.0.0.1, N models seeded through the real webhook path (signed, one completed prediction
per model: a model and a version scope each; every 500th model failing through a
deployment, whose rule fires at once), then the page,
/parts/live and /api/status timed for one viewer and four at once, and webhook latency with
and without four viewers polling. Run by `bench_dashboard.py --serve`.
"""

from __future__ import annotations

import asyncio
import os
import re
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path

import httpx
import orjson

from hookwatch.hooks.signature import sign

SECRET = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
FAILING_EVERY = 500


def _port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _rss_mib(pid: int) -> tuple[float, float]:
    """Resident and peak resident memory of the web process (MiB)."""
    status = Path(f"/proc/{pid}/status").read_text()
    found = [int(re.search(rf"{k}:\s+(\d+)", status).group(1))  # type: ignore[union-attr]
             for k in ("VmRSS", "VmHWM")]
    return found[0] / 1024, found[1] / 1024


def _webhook(model: int, n: int, *, failed: bool) -> tuple[bytes, dict[str, str]]:
    now = time.time()
    stamp = time.strftime("%Y-%m-%dT%H:%M:%S.000000Z", time.gmtime(now))
    pid = f"p{model}x{n}"
    body = orjson.dumps({
        "id": pid, "model": f"acme/model-{model}", "version": "v1", "input": {},
        "status": "failed" if failed else "succeeded", "error": "CUDA out of memory" if failed
        else None, "output": None if failed else ["https://replicate.delivery/o.png"],
        "created_at": stamp, "started_at": stamp, "completed_at": stamp, "logs": "",
        "metrics": {"predict_time": 1.5},
        **({"deployment": f"acme/model-{model}-prod"} if failed else {}),
    })
    msg_id = f"msg_{pid}"
    ts = int(now)
    return body, {"content-type": "application/json", "webhook-id": msg_id,
                  "webhook-timestamp": str(ts), "webhook-signature": sign(SECRET, msg_id, ts,
                                                                          body)}


async def _seed(url: str, models: int, concurrency: int = 32) -> float:
    """One prediction per model (25 failed ones for every FAILING_EVERY-th, past the default
    rules' 20): webhooks/s."""
    jobs = [(m, n, m % FAILING_EVERY == 0) for m in range(models)
            for n in range(25 if m % FAILING_EVERY == 0 else 1)]
    queue = iter(jobs)
    began = time.perf_counter()
    async with httpx.AsyncClient(timeout=30) as client:
        async def worker() -> None:
            for model, n, failed in queue:
                body, headers = _webhook(model, n, failed=failed)
                answer = await client.post(f"{url}/hooks/replicate", content=body,
                                           headers=headers)
                assert answer.status_code == 200, answer.text
        await asyncio.gather(*(worker() for _ in range(concurrency)))
    return len(jobs) / (time.perf_counter() - began)


def _figures(label: str, times: list[float], sizes: list[int]) -> None:
    times = sorted(times)
    p95 = times[min(len(times) - 1, int(len(times) * 0.95))]
    print(f"  {label:<46} {max(sizes) / 1e3:9.1f} kB   median {statistics.median(times):7.1f}"
          f" ms   p95 {p95:7.1f} ms   max {times[-1]:7.1f} ms")


def _get(client: httpx.Client, path: str, headers: dict[str, str] | None = None
         ) -> tuple[float, httpx.Response]:
    began = time.perf_counter()
    answer = client.get(path, headers=headers)
    assert answer.status_code == 200, (path, answer.status_code, answer.text[:200])
    return (time.perf_counter() - began) * 1000, answer


def _one_viewer(url: str, runs: int) -> None:
    with httpx.Client(base_url=url, timeout=60) as client:
        held = {"x-hookwatch-parts": client.get("/parts/live").headers["x-hookwatch-parts"]}
        cases: list[tuple[str, str, dict[str, str] | None]] = [
            ("GET / (first page, attention first)", "/", None),
            ("GET /?offset=20000 (a later page)", "/?offset=20000", None),
            ("GET /?q=model-1234 (search)", "/?q=model-1234", None),
            ("GET /?kind=version&status=unwatched", "/?kind=version&status=unwatched", None),
            ("GET /parts/live, every part", "/parts/live", None),
            ("GET /parts/live, the page's tags", "/parts/live", held),
            ("GET /api/status (default limit 1000)", "/api/status", None),
            ("GET /api/status?limit=100", "/api/status?limit=100", None),
            ("GET /api/status?name=acme/model-1999*", "/api/status?name=acme/model-1999*", None),
        ]
        for label, path, headers in cases:
            times, sizes = [], []
            for _ in range(runs):
                took, answer = _get(client, path, headers)
                times.append(took)
                sizes.append(len(answer.content))
            _figures(label, times, sizes)


def _four_at_once(url: str, path: str, rounds: int) -> tuple[list[float], list[int]]:
    times: list[float] = []
    sizes: list[int] = []
    barrier = threading.Barrier(4)

    def viewer() -> None:
        with httpx.Client(base_url=url, timeout=60) as client:
            for _ in range(rounds):
                barrier.wait()
                took, answer = _get(client, path)
                times.append(took)
                sizes.append(len(answer.content))

    threads = [threading.Thread(target=viewer) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return times, sizes


def _webhooks_while(url: str, seconds: float, rate: float, models: int,
                    background: Callable[[threading.Event], None] | None) -> list[float]:
    """Webhooks at `rate` per second for `seconds` (new predictions: each one a commit that
    the page's summary must show), latencies in ms; `background` runs meanwhile."""
    stop = threading.Event()
    workers = [] if background is None else [threading.Thread(target=background, args=(stop,))
                                             for _ in range(4)]
    for w in workers:
        w.start()
    latencies: list[float] = []
    with httpx.Client(timeout=30) as client:
        began = time.perf_counter()
        n = 0
        while time.perf_counter() - began < seconds:
            due = began + n / rate
            time.sleep(max(0.0, due - time.perf_counter()))
            body, headers = _webhook(n * 7919 % models, 1000 + n + int(began), failed=False)
            sent = time.perf_counter()
            assert client.post(f"{url}/hooks/replicate", content=body,
                               headers=headers).status_code == 200
            latencies.append((time.perf_counter() - sent) * 1000)
            n += 1
    stop.set()
    for w in workers:
        w.join()
    return sorted(latencies)


def _poller(url: str, every: float) -> Callable[[threading.Event], None]:
    """A viewer: the page once, then /parts/live every `every` s with the tags it holds."""
    def run(stop: threading.Event) -> None:
        with httpx.Client(base_url=url, timeout=60) as client:
            client.get("/")
            held = ""
            while not stop.wait(every):
                answer = client.get("/parts/live", headers={"x-hookwatch-parts": held})
                held = answer.headers.get("x-hookwatch-parts", "")
    return run


def _latency_line(label: str, ms: list[float]) -> None:
    p99 = ms[min(len(ms) - 1, int(len(ms) * 0.99))]
    print(f"  {label:<46} {len(ms):5} sent   p50 {statistics.median(ms):6.1f} ms   "
          f"p99 {p99:6.1f} ms   max {ms[-1]:6.1f} ms")


def probe(*, models: int, runs: int, watch: float) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        port = _port()
        url = f"http://127.0.0.1:{port}"
        env = {**os.environ, "HOOKWATCH_DATABASE_URL": f"sqlite:///{tmp}/hookwatch.db",
               "HOOKWATCH_WEBHOOK_SECRETS": SECRET, "HOOKWATCH_DASHBOARD_TOKEN": "",
               "HOOKWATCH_VIEWER_TOKEN": "", "HOOKWATCH_PUBLIC_URL": "",
               "HOOKWATCH_DATA_DIR": ""}
        log = Path(tmp) / "serve.log"
        with log.open("wb") as out:
            proc = subprocess.Popen([sys.executable, "-m", "hookwatch", "serve", "--host",
                                     "127.0.0.1", "--port", str(port)], cwd=tmp, env=env,
                                    stdout=out, stderr=subprocess.STDOUT,
                                    start_new_session=True)
        try:
            deadline = time.monotonic() + 60
            while True:
                try:
                    if httpx.get(url + "/healthz", timeout=1).status_code == 200:
                        break
                except httpx.HTTPError:
                    pass
                if time.monotonic() > deadline or proc.poll() is not None:
                    raise RuntimeError(f"hookwatch serve did not start:\n{log.read_text()}")
                time.sleep(0.2)
            rate = asyncio.run(_seed(url, models, 64))
            print(f"seeded {models} models ({2 * models} scopes) through POST /hooks/replicate "
                  f"at {rate:.0f} webhooks/s; resident {_rss_mib(proc.pid)[0]:.0f} MiB")
            time.sleep(20)  # the evaluator (every 15 s) opens the failing models' alerts
            status = httpx.get(url + "/api/status?limit=1", timeout=60).json()
            print(f"  /api/status: {status['total_scopes']} scopes, {status['firing']} firing")
            print("one viewer:")
            _one_viewer(url, runs)
            print("four viewers at once (4 x 5 rounds):")
            for path in ("/", "/parts/live", "/api/status"):
                _figures(f"GET {path}", *_four_at_once(url, path, 5))
            print(f"webhooks at 20/s for {watch:g} s (each a new commit the page must show):")
            _latency_line("alone", _webhooks_while(url, watch, 20, models, None))
            _latency_line("four viewers polling every 2 s", _webhooks_while(
                url, watch, 20, models, _poller(url, 2.0)))
            _latency_line("four viewers polling every 10 s", _webhooks_while(
                url, watch, 20, models, _poller(url, 10.0)))
            rss, peak = _rss_mib(proc.pid)
            print(f"web process resident {rss:.0f} MiB, peak {peak:.0f} MiB")
        finally:
            os.killpg(proc.pid, signal.SIGTERM)
            try:
                proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
