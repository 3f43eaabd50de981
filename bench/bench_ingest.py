"""Ingest benchmark: committed webhooks/s and latency, hookwatch vs a bare FastAPI endpoint.

Both run under the same uvicorn (one process, uvloop, httptools, no access log) and receive the
same pre-signed, distinct requests from wrk. After the hookwatch run the stored events are
counted: they must equal the number of 2xx answers.

    .venv/bin/python bench/bench_ingest.py [--duration 10] [--connections 64] [--database URL]
"""

from __future__ import annotations

import argparse
import json
import os
import random
import re
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx
from sqlalchemy import create_engine, text

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from hookwatch.hooks.signature import sign  # noqa: E402
from hookwatch.simulate import lifecycle  # noqa: E402

SECRET = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
VENV_BIN = Path(sys.executable).parent


def make_requests(path: Path, count: int, failure_rate: float = 0.1) -> None:
    """count distinct requests: lifecycles of starting, processing, then an outcome."""
    rng = random.Random(7)
    now = time.time()
    with path.open("w") as out:
        n = 0
        while n < count:
            deployment = f"acme/deploy-{rng.randrange(20)}"
            model = f"acme/model-{rng.randrange(10)}"
            for body in lifecycle(rng=rng, now=now, model=model, deployment=deployment,
                                  version="v1", fail=rng.random() < failure_rate):
                raw = json.dumps(body, separators=(",", ":")).encode()
                msg_id = f"msg_{n:09d}"
                ts = int(now)
                out.write(f"{msg_id}\t{ts}\t{sign(SECRET, msg_id, ts, raw)}\t{raw.decode()}\n")
                n += 1


def wait_up(url: str, timeout: float = 60.0, log: Path | None = None) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            httpx.get(url, timeout=1.0)
            return
        except httpx.HTTPError:
            time.sleep(0.1)
    raise RuntimeError(f"{url} did not come up" + (f":\n{log.read_text()}" if log else ""))


def run_wrk(url: str, requests: Path, duration: int, connections: int) -> dict[str, float]:
    out = subprocess.run(
        ["wrk", "-t2", f"-c{connections}", f"-d{duration}s", "--timeout", "10s",
         "-s", str(ROOT / "bench" / "replay.lua"), url, "--", str(requests), "2"],
        capture_output=True, text=True, check=True,
    ).stdout
    match = re.search(r"RESULT (.*)", out)
    if not match:
        raise RuntimeError(out)
    return {k: float(v) for k, v in (kv.split("=") for kv in match.group(1).split())}


def children(pid: int) -> list[int]:
    """The ids of a process's live children (fields[1] of /proc/PID/stat: the parent)."""
    found = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            if stat.read_text().rsplit(")", 1)[1].split()[1] == str(pid):
                found.append(int(stat.parent.name))
        except (OSError, IndexError):
            continue
    return found


def cpu_seconds(pid: int) -> float:
    """utime + stime of a process and its live children (hookwatch's writer process), plus
    their finished children: CPU spent, whatever else loads the machine."""
    ticks = os.sysconf("SC_CLK_TCK")
    total = 0.0
    for proc in [pid, *children(pid)]:
        try:
            fields = Path(f"/proc/{proc}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        total += sum(int(f) for f in fields[11:15]) / ticks
    return total


def rss_mib(pid: int) -> tuple[float, float]:
    status = Path(f"/proc/{pid}/status").read_text()
    rss = int(re.search(r"VmRSS:\s+(\d+)", status).group(1))  # type: ignore[union-attr]
    hwm = int(re.search(r"VmHWM:\s+(\d+)", status).group(1))  # type: ignore[union-attr]
    return rss / 1024, hwm / 1024


def answered_2xx(metrics_url: str) -> int:
    """2xx answers the server sent, from its own counters (wrk misses those still in flight)."""
    text_ = httpx.get(metrics_url, timeout=5).text
    total = 0.0
    for line in text_.splitlines():
        if line.startswith("hookwatch_webhooks_received_total{") and (
            'result="recorded"' in line or 'result="duplicate"' in line
        ):
            total += float(line.rsplit(" ", 1)[1])
    return int(total)


def serve(cmd: list[str], env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
    with log.open("wb") as out:
        return subprocess.Popen(cmd, env=env, cwd=ROOT, stdout=out, stderr=subprocess.STDOUT,
                                start_new_session=True)


def stop(proc: subprocess.Popen[bytes]) -> None:
    os.killpg(proc.pid, signal.SIGTERM)
    try:
        proc.wait(timeout=20)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)


def measure_bare(args: argparse.Namespace, tmp: Path, requests: Path) -> dict[str, float]:
    uvicorn = [str(VENV_BIN / "uvicorn"), "--host", "127.0.0.1", "--port", str(args.port),
               "--no-access-log", "--log-level", "warning", "--loop", "uvloop", "--http",
               "httptools", "--app-dir", str(ROOT / "bench"), "bare_app:app"]
    bare = serve(uvicorn, {**os.environ}, tmp / "bare.log")
    try:
        wait_up(f"http://127.0.0.1:{args.port}/docs")
        cpu0 = cpu_seconds(bare.pid)
        result = run_wrk(args.url, requests, args.duration, args.connections)
        result["cpu_us"] = (cpu_seconds(bare.pid) - cpu0) / (result["ok"] + result["bad"]) * 1e6
        return result
    finally:
        stop(bare)


def measure_hookwatch(
    args: argparse.Namespace, tmp: Path, requests: Path, database: str
) -> dict[str, float]:
    """One run on a fresh database: figures plus the stored = 2xx check."""
    env = {**os.environ, "HOOKWATCH_DATABASE_URL": database,
           "HOOKWATCH_WEBHOOK_SECRETS": SECRET, "HOOKWATCH_AUTO_MIGRATE": "true"}
    hw = serve([str(VENV_BIN / "hookwatch"), "serve", "--port", str(args.port),
                "--log-level", "warning"], env, tmp / "hookwatch.log")
    try:
        wait_up(f"http://127.0.0.1:{args.port}/healthz", log=tmp / "hookwatch.log")
        cpu0 = cpu_seconds(hw.pid)
        result = run_wrk(args.url, requests, args.duration, args.connections)
        result["cpu_us"] = (cpu_seconds(hw.pid) - cpu0) / (result["ok"] + result["bad"]) * 1e6
        result["rss"], result["hwm"] = rss_mib(hw.pid)
        result["child_rss"] = sum(rss_mib(child)[0] for child in children(hw.pid))
        time.sleep(0.5)  # let the requests wrk abandoned at its deadline finish
        result["server_2xx"] = answered_2xx(f"http://127.0.0.1:{args.port}/metrics")
    finally:
        stop(hw)
    engine = create_engine(database)
    with engine.connect() as conn:
        result["stored"] = int(conn.execute(text("SELECT count(*) FROM events")).scalar_one())
    engine.dispose()
    return result


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--duration", type=int, default=10)
    parser.add_argument("--connections", type=int, default=64)
    parser.add_argument("--rounds", type=int, default=3,
                        help="alternating bare/hookwatch rounds; the median ratio is reported")
    parser.add_argument("--requests", type=int, default=0, help="default: 12,000 per second")
    parser.add_argument("--database", default=None, help="default: a fresh SQLite file a round")
    parser.add_argument("--port", type=int, default=18080)
    args = parser.parse_args()
    args.url = f"http://127.0.0.1:{args.port}/hooks/replicate"

    tmp = Path(tempfile.mkdtemp(prefix="hookwatch-bench-"))
    requests = tmp / "requests.tsv"
    count = args.requests or 12_000 * args.duration
    rows: list[tuple[str, dict[str, float]]] = []
    ratios: list[float] = []
    ok = True
    for round_ in range(1, args.rounds + 1):
        print(f"round {round_}/{args.rounds}: preparing {count} signed requests, then bare "
              "FastAPI, then hookwatch ...", flush=True)
        make_requests(requests, count)  # fresh timestamps for each round
        base = measure_bare(args, tmp, requests)
        database = args.database or f"sqlite:///{tmp}/bench-{round_}.db"
        result = measure_hookwatch(args, tmp, requests, database)
        rows += [(f"{round_} bare FastAPI", base), (f"{round_} hookwatch", result)]
        ratios.append(result["rps"] / base["rps"])
        equal = result["stored"] == result["server_2xx"] and (
            result["ok"] <= result["stored"] <= result["ok"] + args.connections
        )
        ok = ok and equal and result["bad"] == 0 and not result["exhausted"]
        print(f"  stored events {result['stored']:.0f}, 2xx sent by hookwatch "
              f"{result['server_2xx']:.0f}, 2xx seen by wrk {result['ok']:.0f} (wrk drops up "
              f"to {args.connections} in flight at its deadline): "
              f"{'EQUAL' if equal else 'MISMATCH'}", flush=True)

    print()
    print(f"{'':18}{'req/s':>9}{'p50 ms':>9}{'p99 ms':>9}{'2xx':>9}{'non-2xx':>9}"
          f"{'CPU us/req':>12}")
    for name, r in rows:
        print(f"{name:18}{r['rps']:>9.0f}{r['p50_us'] / 1000:>9.2f}{r['p99_us'] / 1000:>9.2f}"
              f"{r['ok']:>9.0f}{r['bad']:>9.0f}{r['cpu_us']:>12.0f}")
    print(f"\nthroughput ratio hookwatch / bare, per round: "
          f"{', '.join(f'{r:.2f}x' for r in ratios)}; median {statistics.median(ratios):.2f}x "
          "(target >= 0.80x)")
    last = rows[-1][1]
    print(f"hookwatch resident memory: main process {last['rss']:.0f} MiB (peak "
          f"{last['hwm']:.0f} MiB), writer process {last['child_rss']:.0f} MiB")
    if not ok:
        print("FAILED: a stored/2xx mismatch, a refused request, or wrk ran out of requests")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
