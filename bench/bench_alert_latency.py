"""Alert latency: from the 2xx of the webhook that crosses a rule's threshold to its outbox row.

The real service (create_app under uvicorn on a free port, SQLite file, real clock) with one
rule (deployment error rate > 50% over 10 m, at least 10 predictions) and one notifier. Each
trial uses a fresh deployment: 4 successes and 5 failures (no verdict yet: 9 predictions),
then, once the nudges those caused have run, the crossing failure. The time is taken from the
crossing request's 2xx until its `notifications` row can be read from another connection.
The evaluator's nudge is started as the scheduler starts it (`runtime.nudges.evaluate`); the
periodic jobs are left off so a 15 s tick cannot answer in the nudge's place.

    .venv/bin/python bench/bench_alert_latency.py [--trials 100]
"""

from __future__ import annotations

import argparse
import json
import sqlite3
import statistics
import sys
import tempfile
import threading
import time
import uuid
from pathlib import Path

import httpx
import uvicorn

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from hookwatch.app import create_app  # noqa: E402
from hookwatch.config import load_config  # noqa: E402
from hookwatch.settings import Settings  # noqa: E402
from hookwatch.simulate import signed_request  # noqa: E402

SECRET = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
CONFIG = f"""
[notifiers.hook]
type = "webhook"
url = "http://127.0.0.1:9/alerts"
secret = "{SECRET}"

[[rules]]
name = "deployment-errors"
kind = "error_rate"
scope = "deployment"
window = "10m"
threshold = 0.5
min_predictions = 10
notify = ["hook"]
# Every alert alone: each trial's deployment is a new alert, and under the default grouping
# (one group per rule) all but the first would be folded into the group's next update.
group_by = ["rule", "scope", "name"]
"""


def free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def send(client: httpx.Client, deployment: str, status: str) -> None:
    body = json.dumps({
        "id": uuid.uuid4().hex, "status": status, "model": "bench/model", "version": "v1",
        "deployment": deployment,
        "error": "CUDA out of memory. Tried to allocate 2.00 GiB" if status == "failed" else None,
    }).encode()
    response = client.post("/hooks/replicate", content=body,
                           headers=signed_request(SECRET, None, body, int(time.time())))
    response.raise_for_status()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=100)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        config_path = Path(tmp) / "hookwatch.toml"
        config_path.write_text(CONFIG)
        database = Path(tmp) / "hookwatch.db"
        settings = Settings(database_url=f"sqlite:///{database}", webhook_secrets=[SECRET],
                            auto_migrate=True, config=config_path)
        app = create_app(settings, config=load_config(config_path), run_jobs=False)
        port = free_port()
        server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port,
                                               log_level="warning"))
        thread = threading.Thread(target=server.run, daemon=True)
        thread.start()
        while not server.started:
            time.sleep(0.01)
        runtime = app.state.runtime
        nudger = runtime.nudges.evaluate
        nudger.start()
        reader = sqlite3.connect(database)
        latencies: list[float] = []
        try:
            with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=10) as client:
                for trial in range(args.trials):
                    deployment = f"bench/deployment-{trial}"
                    for status in ["succeeded"] * 4 + ["failed"] * 5:
                        send(client, deployment, status)
                    nudger.wait_idle(10)
                    send(client, deployment, "failed")  # the 10th: 6 of 10 failed, over 50%
                    answered = time.perf_counter()
                    while not reader.execute(
                        "SELECT 1 FROM notifications n JOIN alerts a ON a.id = n.alert_id "
                        "WHERE a.name = ? AND n.kind = 'trigger'", (deployment,)
                    ).fetchone():
                        if time.perf_counter() - answered > 10:
                            raise SystemExit(f"trial {trial}: no outbox row after 10 s")
                        time.sleep(0.001)
                    latencies.append((time.perf_counter() - answered) * 1000)
        finally:
            reader.close()
            nudger.stop()
            server.should_exit = True
            thread.join(timeout=10)
    ordered = sorted(latencies)
    p95 = ordered[min(len(ordered) - 1, int(len(ordered) * 0.95))]
    print(f"alert latency, crossing webhook's 2xx -> outbox row, {len(latencies)} trials "
          f"(SQLite, real clock, nudge debounce {nudger.debounce * 1000:.0f} ms): "
          f"p50 {statistics.median(latencies):.0f} ms, p95 {p95:.0f} ms, "
          f"max {ordered[-1]:.0f} ms (target < 1000 ms)")


if __name__ == "__main__":
    main()
