"""Ingest benchmark: committed webhooks/s per traffic shape against bare FastAPI and raw ASGI.

Per shape, in alternating rounds of one run: hookwatch, a bare FastAPI endpoint, and a raw
ASGI ceiling.

All three run under the same uvicorn (one process, uvloop, httptools, no access log) and get
the same pre-signed, distinct requests of each shape (bench/shapes.py) from wrk. The bare
FastAPI endpoint and the raw ASGI app read the body and answer 200; the raw app shows where
wrk and uvicorn themselves top out on this machine, so a ratio near it would say nothing.
hookwatch starts on a fresh database for every shape and round; afterwards its stored events
must equal the 2xx answers it sent, and its outcome buckets must count every terminal
prediction exactly once.

    .venv/bin/python bench/bench_ingest.py                 # every shape, 3 rounds of 5 s each
    .venv/bin/python bench/bench_ingest.py --shapes completed-1000 --duration 3 --rounds 1
"""

from __future__ import annotations

import argparse
import os
import re
import signal
import socket
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

from bench.shapes import SHAPES, Shape, write_requests  # noqa: E402

SECRET = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
VENV_BIN = Path(sys.executable).parent
WARMUP_S = 1
SERVERS = ("raw ASGI", "bare FastAPI", "hookwatch")


def wait_up(url: str, timeout: float = 60.0, log: Path | None = None) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            httpx.get(url, timeout=1.0)
            return
        except httpx.HTTPError:
            time.sleep(0.1)
    raise RuntimeError(f"{url} did not come up" + (f":\n{log.read_text()}" if log else ""))


def run_wrk(args: argparse.Namespace, port: int, requests: Path, duration: int
            ) -> dict[str, float]:
    out = subprocess.run(
        ["wrk", f"-t{args.threads}", f"-c{args.connections}", f"-d{duration}s", "--timeout",
         "10s", "-s", str(ROOT / "bench" / "replay.lua"),
         f"http://127.0.0.1:{port}/hooks/replicate", "--", str(requests), str(args.threads)],
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


def cpu_seconds(pid: int, *, kids: bool = True) -> float:
    """utime + stime of a process and its live children (hookwatch's writer process), plus
    their finished children: CPU spent, whatever else loads the machine."""
    ticks = os.sysconf("SC_CLK_TCK")
    total = 0.0
    for proc in [pid, *(children(pid) if kids else [])]:
        try:
            fields = Path(f"/proc/{proc}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        total += sum(int(f) for f in fields[11:15]) / ticks
    return total


def memory_mib(pid: int) -> tuple[float, float]:
    """Resident and peak resident (VmHWM) MiB of a process."""
    status = Path(f"/proc/{pid}/status").read_text()
    rss = int(re.search(r"VmRSS:\s+(\d+)", status).group(1))  # type: ignore[union-attr]
    hwm = int(re.search(r"VmHWM:\s+(\d+)", status).group(1))  # type: ignore[union-attr]
    return rss / 1024, hwm / 1024


def answered_2xx(port: int) -> int:
    """2xx answers the server sent, from its own counters (wrk misses those still in flight)."""
    total = 0.0
    for line in httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=5).text.splitlines():
        if line.startswith("hookwatch_webhooks_received_total{") and (
            'result="recorded"' in line or 'result="duplicate"' in line
        ):
            total += float(line.rsplit(" ", 1)[1])
    return int(total)


def free_port() -> int:
    """A port nobody listens on now (others may run this benchmark on the same machine)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


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
        proc.wait()


def uvicorn(port: int, app: str, tmp: Path) -> subprocess.Popen[bytes]:
    cmd = [str(VENV_BIN / "uvicorn"), "--host", "127.0.0.1", "--port", str(port),
           "--no-access-log", "--log-level", "warning", "--loop", "uvloop", "--http",
           "httptools", "--app-dir", str(ROOT / "bench"), app]
    proc = serve(cmd, {**os.environ}, tmp / f"{app.split(':')[0]}.log")
    wait_up(f"http://127.0.0.1:{port}/", log=tmp / f"{app.split(':')[0]}.log")
    return proc


CORES = os.cpu_count() or 1


def machine_ticks() -> tuple[int, int]:
    """The whole machine's busy and total CPU ticks so far (/proc/stat's first line; steal
    counts as busy: a core the hypervisor took was not ours to use)."""
    fields = [int(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:9]]
    idle = fields[3] + fields[4]  # idle, iowait
    return sum(fields) - idle, sum(fields)


def measure(args: argparse.Namespace, pid: int, port: int, requests: Path) -> dict[str, float]:
    cpu0, own0 = cpu_seconds(pid), cpu_seconds(pid, kids=False)
    busy0, total0 = machine_ticks()
    result = run_wrk(args, port, requests, args.duration)
    busy1, total1 = machine_ticks()
    result["machine"] = (busy1 - busy0) / max(1, total1 - total0) * 100
    answered = max(1.0, result["ok"] + result["bad"])
    result["cpu_us"] = (cpu_seconds(pid) - cpu0) / answered * 1e6
    result["web_us"] = (cpu_seconds(pid, kids=False) - own0) / answered * 1e6
    return result


def start_hookwatch(port: int, database: str, log: Path) -> subprocess.Popen[bytes]:
    """`hookwatch serve` on `database` (migrated at start, SQLite synchronous=FULL), signed
    with SECRET, up and answering when this returns."""
    env = {**os.environ, "HOOKWATCH_DATABASE_URL": database,
           "HOOKWATCH_WEBHOOK_SECRETS": SECRET, "HOOKWATCH_AUTO_MIGRATE": "true",
           "HOOKWATCH_SQLITE_SYNCHRONOUS": "FULL"}
    hw = serve([str(VENV_BIN / "hookwatch"), "serve", "--port", str(port),
                "--log-level", "warning"], env, log)
    try:
        wait_up(f"http://127.0.0.1:{port}/healthz", log=log)
    except BaseException:
        stop(hw)
        raise
    return hw


def measure_hookwatch(args: argparse.Namespace, tmp: Path, shape: Shape, requests: Path,
                      warmup: Path, database: str) -> dict[str, float]:
    """One run on a fresh database: figures, then the stored = 2xx and exact-count checks."""
    log = tmp / f"hookwatch-{shape.name}.log"
    hw = start_hookwatch(args.port, database, log)
    try:
        warm = run_wrk(args, args.port, warmup, WARMUP_S)
        result = measure(args, hw.pid, args.port, requests)
        result["ok_total"] = result["ok"] + warm["ok"]
        result["bad"] += warm["bad"]
        result["exhausted"] += warm["exhausted"]
        result["rss"], result["hwm"] = memory_mib(hw.pid)
        writers = [memory_mib(child) for child in children(hw.pid)]
        result["child_rss"] = sum(m[0] for m in writers)
        result["child_hwm"] = sum(m[1] for m in writers)
        time.sleep(0.5)  # let the requests wrk abandoned at its deadline finish
        result["server_2xx"] = answered_2xx(args.port)
    finally:
        stop(hw)
    batches = re.search(r"(\d+) events committed in (\d+) batches", log.read_text())
    result["batch"] = int(batches.group(1)) / max(1, int(batches.group(2))) if batches else 0
    engine = create_engine(database)
    with engine.connect() as conn:
        result["stored"] = conn.execute(text("SELECT count(*) FROM events")).scalar_one()
        counted = conn.execute(
            text("SELECT count(*) FROM predictions WHERE counted_at IS NOT NULL")).scalar_one()
        # Every terminal prediction counted once per resolution (each has a model scope).
        sums = conn.execute(text(
            "SELECT resolution, sum(succeeded + failed + canceled + aborted + other) "
            "FROM outcome_buckets WHERE scope = 'model' GROUP BY resolution")).all()
    engine.dispose()
    result["exact"] = float(bool(sums) and all(int(total) == counted for _, total in sums))
    return result


def check(args: argparse.Namespace, r: dict[str, float]) -> str:
    equal = r["stored"] == r["server_2xx"] and (
        r["ok_total"] <= r["stored"] <= r["ok_total"] + 2 * args.connections)
    problems = [] if equal else [
        f"MISMATCH stored {r['stored']:.0f}, 2xx sent {r['server_2xx']:.0f}, "
        f"2xx seen by wrk {r['ok_total']:.0f}"]
    if not r["exact"]:
        problems.append("outcome buckets do not count every terminal prediction once")
    if r["bad"]:
        problems.append(f"{r['bad']:.0f} non-2xx answers")
    if r["exhausted"]:
        problems.append("wrk ran out of distinct requests (raise --rate)")
    return "; ".join(problems)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--shapes", default=",".join(SHAPES),
                        help=f"comma-separated, of: {', '.join(SHAPES)} (default: all)")
    parser.add_argument("--duration", type=int, default=5, help="seconds per wrk run")
    parser.add_argument("--rounds", type=int, default=3,
                        help="rounds of raw/bare/hookwatch per shape; medians are reported")
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument("--threads", type=int, default=1, help="wrk threads")
    parser.add_argument("--rate", type=int, default=16_000,
                        help="distinct requests prepared per second of --duration")
    parser.add_argument("--port", type=int, default=0, help="hookwatch's (default: a free one)")
    args = parser.parse_args()
    args.port = args.port or free_port()
    shapes = [SHAPES[name] for name in args.shapes.split(",")]

    tmp = Path(tempfile.mkdtemp(prefix="hookwatch-bench-"))
    ports = {"bare FastAPI": free_port(), "raw ASGI": free_port()}
    procs = {"bare FastAPI": uvicorn(ports["bare FastAPI"], "bare_app:app", tmp),
             "raw ASGI": uvicorn(ports["raw ASGI"], "raw_app:app", tmp)}
    results: dict[str, dict[str, list[dict[str, float]]]] = {
        s.name: {server: [] for server in SERVERS} for s in shapes}
    failures: list[str] = []
    try:
        for round_ in range(1, args.rounds + 1):
            for shape in shapes:
                requests, warmup = tmp / "requests.tsv", tmp / "warmup.tsv"
                now = time.time()  # fresh timestamps for each run (a 5-minute tolerance)
                write_requests(requests, shape, args.rate * args.duration, SECRET, now)
                write_requests(warmup, shape, args.rate * WARMUP_S, SECRET, now, seed=8,
                               prefix="warm")
                if round_ == 1 and shape is shapes[0]:
                    for server in ports:
                        run_wrk(args, ports[server], warmup, WARMUP_S)
                row = results[shape.name]
                for server in ("bare FastAPI", "raw ASGI"):
                    row[server].append(measure(args, procs[server].pid, ports[server], requests))
                # A fresh file a run; PostgreSQL, on a fresh schema a run: bench_replicas.py.
                database = f"sqlite:///{tmp}/{shape.name}-{round_}.db"
                hw = measure_hookwatch(args, tmp, shape, requests, warmup, database)
                row["hookwatch"].append(hw)
                problem = check(args, hw)
                if problem:
                    failures.append(f"{shape.name} round {round_}: {problem}")
                print(f"round {round_}/{args.rounds} {shape.name:16} "
                      + "  ".join(f"{s} {row[s][-1]['rps']:,.0f}/s" for s in SERVERS)
                      + f"  ratio {hw['rps'] / row['bare FastAPI'][-1]['rps']:.2f}x"
                      + f"  stored {hw['stored']:.0f} = 2xx {hw['server_2xx']:.0f}"
                      + (f"  {problem}" if problem else ""), flush=True)
    finally:
        for proc in procs.values():
            stop(proc)
    report(args, shapes, results)
    for failure in failures:
        print("FAILED:", failure)
    return 1 if failures else 0


def report(args: argparse.Namespace, shapes: list[Shape],
           results: dict[str, dict[str, list[dict[str, float]]]]) -> None:
    med = statistics.median
    print(f"\nwrk -t{args.threads} -c{args.connections}, {args.duration} s runs, {args.rounds} "
          "round(s); medians over rounds; hookwatch on SQLite, synchronous=FULL")
    print(f"{'shape':16}{'server':14}{'req/s':>9}{'p50 ms':>8}{'p99 ms':>8}{'CPU us':>8}"
          f"{'web us':>8}{'cores':>6}{'batch':>7}{'ratio':>7}  per round")
    for shape in shapes:
        row = results[shape.name]
        ratios = [h["rps"] / b["rps"] for h, b in zip(row["hookwatch"], row["bare FastAPI"],
                                                       strict=True)]
        for server in SERVERS:
            runs = row[server]
            hook = server == "hookwatch"
            print(f"{shape.name if server == SERVERS[0] else '':16}{server:14}"
                  f"{med(r['rps'] for r in runs):>9,.0f}"
                  f"{med(r['p50_us'] for r in runs) / 1000:>8.2f}"
                  f"{med(r['p99_us'] for r in runs) / 1000:>8.2f}"
                  f"{med(r['cpu_us'] for r in runs):>8.0f}"
                  f"{med(r['web_us'] for r in runs):>8.0f}"
                  f"{med(r['machine'] for r in runs) * CORES / 100:>6.1f}"
                  + (f"{med(r['batch'] for r in runs):>7.1f}{med(ratios):>6.2f}x  "
                     + ", ".join(f"{x:.2f}" for x in ratios) if hook else ""))
    peak = max((r for s in shapes for r in results[s.name]["hookwatch"]),
               key=lambda r: r["hwm"] + r["child_hwm"])
    print(f"\nhookwatch resident memory, largest run: web process {peak['rss']:.0f} MiB (peak "
          f"{peak['hwm']:.0f}), writer process {peak['child_rss']:.0f} MiB (peak "
          f"{peak['child_hwm']:.0f}); together at most {peak['hwm'] + peak['child_hwm']:.0f} MiB "
          f"after {args.duration} s (it grows for a minute or more: bench/soak_memory.py)")
    print("ratio: hookwatch's committed webhooks/s over the bare FastAPI endpoint's req/s, per "
          "round, median first (target >= 0.90x, p99 < 25 ms)")
    print(f"cores: the whole machine's busy cores during the run, wrk and everyone else included "
          f"(of {CORES})")


if __name__ == "__main__":
    sys.exit(main())
