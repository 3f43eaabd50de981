"""The `hookwatch demo` command: flags, starting the children, driving traffic, cleaning up."""

from __future__ import annotations

import argparse
import contextlib
import itertools
import os
import random
import secrets
import shutil
import signal
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx

from hookwatch.demo.children import (
    Child,
    DemoError,
    port_in_use,
    start_cog_server,
    start_hookwatch,
    wait_until,
)
from hookwatch.demo.console import say
from hookwatch.demo.driver import Driver
from hookwatch.demo.endpoints import cog_ready, hookwatch_ready, predict, webhook_url
from hookwatch.demo.plan import DEFAULT_PLAN
from hookwatch.demo.watcher import AlertWatcher

DEMO_MODEL = "hookwatch/testmodel"
DEMO_DEPLOYMENT = "demo"


def default_model_dir() -> Path:
    """testmodel/ at the repository root: the demo runs from a checkout (`make demo`)."""
    env = os.environ.get("HOOKWATCH_TESTMODEL_DIR")
    if env:
        return Path(env)
    return Path(__file__).resolve().parents[2] / "testmodel"


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="hookwatch demo",
        description="Start hookwatch and the bundled test model under a real Cog server, then "
        "send healthy traffic, a burst of failures that fires an alert, and healthy traffic "
        "again until it resolves. Ctrl-C stops everything.",
    )
    p.add_argument("--host", default="127.0.0.1", help="hookwatch address (default 127.0.0.1)")
    p.add_argument("--port", type=int, default=8000, help="hookwatch port (default 8000)")
    p.add_argument("--cog-port", type=int, default=5000, help="Cog server port (default 5000)")
    p.add_argument(
        "--data-dir",
        type=Path,
        default=None,
        help="keep the SQLite database and logs here (default: a temporary folder, removed)",
    )
    p.add_argument("--config", type=Path, default=None, help="hookwatch config (rules, notifiers)")
    p.add_argument("--model-dir", type=Path, default=None, help="the test model (testmodel/)")
    p.add_argument("--duration", type=float, default=None, help="stop after S seconds")
    p.add_argument("--size", type=int, default=128, help="matrix size for each prediction")
    p.add_argument("--seed", type=int, default=None, help="seed for the traffic (repeatable)")
    return p


@contextlib.contextmanager
def _terminate_as_interrupt() -> Iterator[None]:
    """SIGTERM ends the demo like Ctrl-C does, so the children are always stopped."""

    def handler(_signum: int, _frame: object) -> None:
        raise KeyboardInterrupt

    previous = signal.signal(signal.SIGTERM, handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    model_dir = (args.model_dir or default_model_dir()).resolve()
    if not (model_dir / "predict.py").is_file():
        say(f"hookwatch demo: the test model is not at {model_dir} (use --model-dir)")
        return 2
    for what, port in (("hookwatch", args.port), ("the Cog server", args.cog_port)):
        if port_in_use("127.0.0.1", port):
            say(
                f"hookwatch demo: port {port} for {what} is taken; pick another with --port "
                "or --cog-port"
            )
            return 2
    own_dir = args.data_dir is None
    data_dir = Path(tempfile.mkdtemp(prefix="hookwatch-demo-")) if own_dir else args.data_dir
    data_dir.mkdir(parents=True, exist_ok=True)
    token = secrets.token_urlsafe(24)
    children: list[Child] = []
    try:
        with _terminate_as_interrupt():
            return _run(args, model_dir, data_dir, token, children)
    except KeyboardInterrupt:
        say("\nstopping…")
        return 130
    except DemoError as exc:
        say(f"hookwatch demo: {exc}")
        return 1
    finally:
        for child in reversed(children):
            child.stop()
        if own_dir:
            shutil.rmtree(data_dir, ignore_errors=True)
        else:
            say(f"database and logs kept in {data_dir}")


def _run(
    args: argparse.Namespace, model_dir: Path, data_dir: Path, token: str, children: list[Child]
) -> int:
    host, port = args.host, args.port
    base = f"http://{host}:{port}"
    cog_url = f"http://127.0.0.1:{args.cog_port}"
    db_url = f"sqlite:///{data_dir / 'hookwatch-demo.db'}"
    say(f"starting hookwatch on {base} (database {data_dir / 'hookwatch-demo.db'})")
    children.append(
        start_hookwatch(
            host,
            port,
            database_url=db_url,
            token=token,
            config=args.config,
            log_path=data_dir / "hookwatch.log",
        )
    )
    say(f"starting the test model under the Cog server on {cog_url} (model {model_dir})")
    children.append(
        start_cog_server(
            model_dir, args.cog_port, token=token, log_path=data_dir / "cog-server.log"
        )
    )
    hook = webhook_url(host, port, DEMO_MODEL, DEMO_DEPLOYMENT)
    with httpx.Client() as client:
        wait_until(lambda: hookwatch_ready(client, base), children[0], 60)
        say("hookwatch is up")
        wait_until(lambda: cog_ready(client, cog_url), children[1], 120)
        say("the Cog server is ready")
        say(f"\n  dashboard    {base}/\n  webhook URL  {hook}\n  logs         {data_dir}\n")

        run_id = secrets.token_hex(3)
        counter = itertools.count(1)

        def submit(outcome: str, seed: int) -> str:
            pid = f"demo-{run_id}-{next(counter):05d}"
            model_input = {"outcome": outcome, "seed": seed, "size": args.size, "log_lines": 2}
            result = predict(client, cog_url, model_input, webhook=hook, prediction_id=pid)
            return str(result.get("status", "unknown"))

        def fetch_alerts() -> Any | None:
            r = client.get(f"{base}/api/alerts", timeout=5.0)
            if r.status_code == 404:
                return None
            r.raise_for_status()
            return r.json()

        watcher = AlertWatcher(fetch_alerts, say)
        rng = random.Random(args.seed)

        def tick(elapsed: float) -> None:
            for child in children:
                if not child.alive():
                    raise DemoError(
                        f"{child.name} stopped (exit {child.proc.returncode}); "
                        f"its log ends with:\n{child.log_tail()}"
                    )
            watcher.poll(elapsed)

        driver = Driver(
            DEFAULT_PLAN,
            submit,
            now=time.monotonic,
            sleep=time.sleep,
            rng=rng,
            log=say,
            tick=tick,
            alert_firing=lambda: watcher.firing,
        )
        say("driving predictions; Ctrl-C stops the demo")
        stats = driver.run(duration=args.duration)
        say(f"done: {stats.summary()}; alerts fired {watcher.fired}, resolved {watcher.resolved}")
    return 0
