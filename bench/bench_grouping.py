"""A storm, and a hanging channel: notifications per channel when 100 models fail within 20 s,
the first crossing webhook's 2xx to the first page, and the delay a hanging channel adds.

The real service (create_app under uvicorn, SQLite file, real clock, the scheduler and nudges
running) with local receivers that record arrival times: a Slack Web API (chat.postMessage,
chat.update), a PagerDuty Events API and an SMTP server (aiosmtpd). The rule is the built-in
model error rate (no group_by: one group per rule) with `--group-interval` (default 30 s, so
the fold shows within the run; the built-in default is 5m).

1. Storm: each of `--models` models gets 20 failures, one model every 20 s / models; then the
   run waits two group intervals. Printed: messages per channel, and the crossing webhook's
   2xx to the first PagerDuty event and the first Slack message.
2. Hang: `--trials` single alerts (a fresh model each, group_by name so each pages at once),
   with only the healthy channels, then with a Slack webhook that never answers (timeout 10 s)
   beside them. Printed: the median first-page latency of each, and the difference.

    .venv/bin/python bench/bench_grouping.py [--models 100] [--trials 20]
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import uvicorn

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from hookwatch.app import create_app  # noqa: E402
from hookwatch.config import load_config  # noqa: E402
from hookwatch.settings import Settings  # noqa: E402
from hookwatch.simulate import signed_request  # noqa: E402
from tests.notifiers.helpers import (  # noqa: E402
    ROUTING_KEY,
    SLACK_PATH,
    SLACK_TOKEN,
    Hanging,
    Receiver,
    SmtpRecorder,
    pagerduty_answer,
    slack_api_answer,
    smtp_controller,
)

SECRET = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"


class Timed(Receiver):
    """A recording receiver that also notes when each request arrived."""

    def __post_init__(self) -> None:
        super().__post_init__()
        self.times: list[float] = []
        inner = self.answer

        def answer(request):  # type: ignore[no-untyped-def]
            self.times.append(time.perf_counter())
            return inner(request)

        self.answer = answer


def notifiers(slack: Receiver, pd: Receiver, smtp_port: int, hanging: str | None) -> str:
    text = f"""
[notifiers.team]
type = "slack"
token = "{SLACK_TOKEN}"
channel = "C0BENCH"
api_url = "{slack.url}/api/"

[notifiers.oncall]
type = "pagerduty"
routing_key = "{ROUTING_KEY}"
events_url = "{pd.url}/v2/enqueue"

[notifiers.mail]
type = "email"
smtp_host = "127.0.0.1"
smtp_port = {smtp_port}
from = "hookwatch@example.com"
to = ["oncall@example.com"]
"""
    if hanging:
        text += f'\n[notifiers.stuck]\ntype = "slack"\nwebhook_url = "{hanging}{SLACK_PATH}"\n'
    return text


def rule(group_by: str, interval: str, notify: list[str]) -> str:
    return f"""
[[rules]]
name = "model-error-rate"
kind = "error_rate"
scope = "model"
window = "10m"
threshold = 0.2
min_predictions = 20
notify = {json.dumps(notify)}
{group_by}
group_interval = "{interval}"
"""


@contextmanager
def service(config_text: str, tmp: Path) -> Iterator[httpx.Client]:
    config_path = tmp / f"hookwatch-{uuid.uuid4().hex[:6]}.toml"
    config_path.write_text(config_text)
    database = tmp / f"{config_path.stem}.db"
    settings = Settings(database_url=f"sqlite:///{database}", webhook_secrets=[SECRET],
                        auto_migrate=True, config=config_path)
    app = create_app(settings, config=load_config(config_path))
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port,
                                           log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    while not server.started:
        time.sleep(0.01)
    try:
        with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=10) as client:
            yield client
    finally:
        server.should_exit = True
        thread.join(timeout=30)


def send(client: httpx.Client, model: str, status: str) -> float:
    body = json.dumps({
        "id": uuid.uuid4().hex, "status": status, "model": model,
        "error": "CUDA out of memory. Tried to allocate 2.00 GiB" if status == "failed" else None,
    }).encode()
    response = client.post("/hooks/replicate", content=body,
                           headers=signed_request(SECRET, None, body, int(time.time())))
    response.raise_for_status()
    return time.perf_counter()


def wait(condition, timeout: float) -> bool:  # type: ignore[no-untyped-def]
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if condition():
            return True
        time.sleep(0.002)
    return bool(condition())


def storm(tmp: Path, models: int, interval: float) -> None:
    mail = SmtpRecorder()
    smtp = smtp_controller(mail)
    with Timed(answer=slack_api_answer) as slack, Timed(answer=pagerduty_answer) as pd:
        text = notifiers(slack, pd, smtp.port, None) + rule(
            "", f"{interval:g}s", ["team", "oncall", "mail"])
        with service(text, tmp) as client:
            started = time.perf_counter()
            first_crossing: float | None = None
            for i in range(models):
                target = started + i * 20.0 / models
                time.sleep(max(0.0, target - time.perf_counter()))
                for _ in range(20):
                    answered = send(client, f"bench/model-{i:03d}", "failed")
                if first_crossing is None:
                    first_crossing = answered  # the 20th failure: min_predictions reached
            burst = time.perf_counter() - started
            time.sleep(2 * interval + 3)
        smtp.stop()
        assert first_crossing is not None
        posts = [r for r in slack.requests if r.path.endswith("chat.postMessage")]
        updates = [r for r in slack.requests if r.path.endswith("chat.update")]
        print(f"storm: {models} models failing over {burst:.1f} s, group_interval "
              f"{interval:g} s, waited {2 * interval + 3:g} s after the burst")
        print(f"  notifications per channel: Slack {len(posts)} messages (+{len(updates)} "
              f"chat.update of the parent), PagerDuty {len(pd.requests)} events "
              f"({len({r.json()['dedup_key'] for r in pd.requests})} incident), email "
              f"{len(mail.messages)} messages")
        print(f"  first crossing webhook's 2xx -> first page: PagerDuty "
              f"{(pd.times[0] - first_crossing) * 1000:.0f} ms, Slack "
              f"{(slack.times[0] - first_crossing) * 1000:.0f} ms (goal < 1000 ms)")


def single_pages(tmp: Path, trials: int, hanging: str | None) -> list[float]:
    mail = SmtpRecorder()
    smtp = smtp_controller(mail)
    latencies: list[float] = []
    with Timed(answer=slack_api_answer) as slack, Timed(answer=pagerduty_answer) as pd:
        notify = ["team", "oncall", "mail"] + (["stuck"] if hanging else [])
        text = notifiers(slack, pd, smtp.port, hanging) + rule(
            'group_by = ["rule", "name"]', "5m", notify)
        with service(text, tmp) as client:
            for trial in range(trials):
                before = len(pd.times), len(slack.times)
                model = f"bench/single-{uuid.uuid4().hex[:8]}"
                for _ in range(19):
                    send(client, model, "failed")
                # The nudges those caused have run, and Slack's one message a second per
                # destination (notifiers.slack) is not what is measured.
                time.sleep(1.2)
                answered = send(client, model, "failed")
                if not wait(lambda b=before: len(pd.times) > b[0] and len(slack.times) > b[1],
                            10):
                    raise SystemExit(f"trial {trial}: no page within 10 s")
                latencies.append((max(pd.times[before[0]], slack.times[before[1]])
                                  - answered) * 1000)
    smtp.stop()
    return latencies


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", type=int, default=100)
    parser.add_argument("--trials", type=int, default=20)
    parser.add_argument("--group-interval", type=float, default=30.0)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as name:
        tmp = Path(name)
        storm(tmp, args.models, args.group_interval)
        healthy = single_pages(tmp, args.trials, None)
        with Hanging() as hung:
            beside = single_pages(tmp, args.trials, hung.url)
    a, b = statistics.median(healthy), statistics.median(beside)
    print(f"hang: crossing webhook's 2xx -> PagerDuty and Slack both paged, {args.trials} "
          f"trials each: median {a:.0f} ms alone, {b:.0f} ms beside a Slack webhook that "
          f"never answers; added {b - a:+.0f} ms (goal < 100 ms)")


if __name__ == "__main__":
    main()
