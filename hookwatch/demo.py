"""`hookwatch demo`: hookwatch serve + the bundled test model under a real Cog server + traffic."""

from __future__ import annotations

import argparse
import contextlib
import ctypes
import itertools
import os
import random
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

import httpx

# The model's failure outcomes the demo draws from. hang and crash stay out: either one takes
# the Cog server's single worker out of service, and the demo would stall instead of recover.
DEMO_FAILURES: tuple[str, ...] = ("error", "cuda_oom", "nan", "bad_return_type")
# start + completed is enough for hookwatch to see every prediction begin and end; output and
# logs events would only multiply the webhooks per prediction.
WEBHOOK_EVENTS: tuple[str, ...] = ("start", "completed")
DEMO_MODEL = "hookwatch/testmodel"
DEMO_DEPLOYMENT = "demo"
TERMINAL = frozenset({"succeeded", "failed", "canceled", "aborted"})


def default_model_dir() -> Path:
    """testmodel/ beside the package: the demo runs from a checkout (`make demo`)."""
    env = os.environ.get("HOOKWATCH_TESTMODEL_DIR")
    if env:
        return Path(env)
    return Path(__file__).resolve().parent.parent / "testmodel"


# --------------------------------------------------------------------------------------------
# The traffic plan: pure, driven by an injected clock.


@dataclass(frozen=True)
class Phase:
    """One stretch of traffic: how often to predict and how many of those should fail."""

    name: str
    seconds: float | None  # None: until the demo stops
    rate: float  # predictions per second
    failure_rate: float  # share of predictions asked to fail
    note: str = ""
    failures: tuple[str, ...] = DEMO_FAILURES
    # End early once an alert is firing (after min_seconds), so a quick rule means a quick demo.
    ends_on_alert: bool = False
    min_seconds: float = 0.0


# Sized for the built-in rules (error rate > 20% over 10m with >= 20 predictions, no `for`) and
# for configs with `for` up to 1m and keep_firing_for up to 2m. 30 healthy predictions, then
# about 1/s at 85% failure: the rate crosses 20% some 10 s into the burst and stays far above it
# for the next minute, long enough for any such `for`. The burst stops early once the alert
# fires (but not before 25 s). Recovery sends 6 successes a second, which pulls the 10-minute
# rate back under 20% within about 10-40 s; the steady phase after it stays far below 20%, so
# keep_firing_for runs out there at the latest. Built-in rules: fires ~13 s into the burst,
# resolves ~20 s into recovery (about a minute in all).
DEFAULT_PLAN: tuple[Phase, ...] = (
    Phase("healthy", 15.0, 2.0, 0.0, "every prediction succeeds"),
    Phase(
        "failure burst",
        80.0,
        1.0,
        0.85,
        "most predictions fail (error, CUDA OOM, NaN, bad return type)",
        ends_on_alert=True,
        min_seconds=25.0,
    ),
    Phase("recovery", 90.0, 6.0, 0.0, "a flood of successes pulls the error rate back down"),
    Phase("steady", None, 1.0, 0.02, "light healthy traffic until you stop the demo"),
)


def phase_at(plan: Sequence[Phase], elapsed: float) -> tuple[int, Phase] | None:
    """The phase a plan is in `elapsed` seconds after its start, or None once it is over."""
    if elapsed < 0:
        raise ValueError("elapsed must not be negative")
    start = 0.0
    for index, phase in enumerate(plan):
        if phase.seconds is None or elapsed < start + phase.seconds:
            return index, phase
        start += phase.seconds
    return None


def choose_outcome(phase: Phase, rng: random.Random) -> str:
    """The model outcome for the next prediction in `phase`."""
    if phase.failures and rng.random() < phase.failure_rate:
        return rng.choice(phase.failures)
    return "success"


class SubmitError(Exception):
    """A prediction could not be handed to the Cog server (busy, down, bad answer)."""


@dataclass
class DriverStats:
    sent: int = 0
    outcomes: Counter[str] = field(default_factory=Counter)  # what the demo asked for
    statuses: Counter[str] = field(default_factory=Counter)  # what the Cog server answered
    submit_errors: int = 0
    phases: list[str] = field(default_factory=list)

    def summary(self) -> str:
        parts = ", ".join(f"{n} {s}" for s, n in sorted(self.statuses.items()))
        extra = f", {self.submit_errors} not accepted" if self.submit_errors else ""
        return f"{self.sent} predictions ({parts or 'none answered'}{extra})"


class Driver:
    """Runs a plan: submits predictions at each phase's rate. No clock or network of its own."""

    def __init__(
        self,
        plan: Sequence[Phase],
        submit: Callable[[str, int], str],
        *,
        now: Callable[[], float],
        sleep: Callable[[float], None],
        rng: random.Random,
        log: Callable[[str], None],
        tick: Callable[[float], None] | None = None,
        alert_firing: Callable[[], bool] = lambda: False,
        tick_interval: float = 2.0,
        report_interval: float = 15.0,
        max_sleep: float = 0.5,
    ) -> None:
        if not plan:
            raise ValueError("a plan needs at least one phase")
        for phase in plan:
            if phase.rate <= 0:
                raise ValueError(f"phase {phase.name!r}: rate must be positive")
            if not 0.0 <= phase.failure_rate <= 1.0:
                raise ValueError(f"phase {phase.name!r}: failure_rate must be within 0..1")
        self.plan = list(plan)
        self.submit = submit
        self.now = now
        self.sleep = sleep
        self.rng = rng
        self.log = log
        self.tick = tick
        self.alert_firing = alert_firing
        self.tick_interval = tick_interval
        self.report_interval = report_interval
        self.max_sleep = max_sleep
        self.stats = DriverStats()

    def run(
        self, duration: float | None = None, should_stop: Callable[[], bool] = lambda: False
    ) -> DriverStats:
        """Drive until the plan ends, `duration` seconds pass, or should_stop() says so."""
        start = self.now()
        index = 0
        phase_start = start
        next_due = start
        next_tick = start
        next_report = start + self.report_interval
        self._announce(0, 0.0)
        while True:
            t = self.now()
            elapsed = t - start
            if (duration is not None and elapsed >= duration) or should_stop():
                break
            if self.tick is not None and t >= next_tick:
                self.tick(elapsed)
                next_tick = t + self.tick_interval
            if t >= next_report:
                self.log(f"[{elapsed:5.0f}s] sent {self.stats.summary()}")
                next_report = t + self.report_interval
            phase = self.plan[index]
            in_phase = t - phase_start
            timed_out = phase.seconds is not None and in_phase >= phase.seconds
            cut_short = (
                phase.ends_on_alert and in_phase >= phase.min_seconds and self.alert_firing()
            )
            if timed_out or cut_short:
                if index + 1 == len(self.plan):
                    break
                index += 1
                phase_start = t
                next_due = t
                if cut_short and not timed_out:
                    self.log(f"[{elapsed:5.0f}s] the alert is firing: ending {phase.name!r} early")
                self._announce(index, elapsed)
                continue
            if t >= next_due:
                self._send_one(phase)
                # Keep to the rate, but never race to catch up after a slow prediction.
                next_due = max(next_due + 1.0 / phase.rate, t)
                continue
            wake = min(next_due, next_report)
            if self.tick is not None:
                wake = min(wake, next_tick)
            if phase.seconds is not None:
                wake = min(wake, phase_start + phase.seconds)
            self.sleep(min(max(wake - t, 0.0), self.max_sleep))
        return self.stats

    def _announce(self, index: int, elapsed: float) -> None:
        phase = self.plan[index]
        self.stats.phases.append(phase.name)
        length = "until stopped" if phase.seconds is None else f"up to {phase.seconds:.0f}s"
        self.log(
            f"[{elapsed:5.0f}s] phase {index + 1}/{len(self.plan)} {phase.name!r} ({length}): "
            f"{phase.rate:g}/s, {phase.failure_rate:.0%} failing"
            + (f": {phase.note}" if phase.note else "")
        )

    def _send_one(self, phase: Phase) -> None:
        outcome = choose_outcome(phase, self.rng)
        seed = self.rng.randrange(2**31)
        self.stats.sent += 1
        self.stats.outcomes[outcome] += 1
        try:
            status = self.submit(outcome, seed)
        except SubmitError as exc:
            self.stats.submit_errors += 1
            # The first few say what is wrong; after that they would drown the progress lines.
            if self.stats.submit_errors <= 3:
                self.log(f"  prediction not accepted: {exc}")
            return
        self.stats.statuses[status] += 1


# --------------------------------------------------------------------------------------------
# Watching hookwatch's alerts (GET /api/alerts), tolerant of its shape and of its absence.


def _alert_items(payload: Any) -> list[Mapping[str, Any]]:
    if isinstance(payload, Mapping):
        payload = payload.get("alerts", payload.get("items", []))
    if not isinstance(payload, list):
        return []
    return [a for a in payload if isinstance(a, Mapping)]


def _alert_key(alert: Mapping[str, Any]) -> str:
    if alert.get("id") is not None:
        return str(alert["id"])
    return "|".join(str(alert.get(k)) for k in ("rule", "scope", "scope_name", "name"))


def _alert_state(alert: Mapping[str, Any]) -> str:
    return str(alert.get("state") or alert.get("status") or "").lower()


def describe_alert(alert: Mapping[str, Any]) -> str:
    rule = alert.get("rule") or alert.get("rule_name") or alert.get("alertname") or "alert"
    if isinstance(rule, Mapping):
        rule = rule.get("name", "alert")
    scope = alert.get("scope")
    name = alert.get("scope_name") or alert.get("name") or alert.get("target")
    where = " ".join(str(x) for x in (scope, name) if x and x != rule)
    summary = alert.get("summary")
    value = alert.get("value") if alert.get("value") is not None else alert.get("error_rate")
    if summary:
        shown = f": {summary}"
    elif isinstance(value, float):
        shown = f" (value {value:.0%})"
    else:
        shown = ""
    return f"{rule}{' on ' + where if where else ''}{shown}"


class AlertWatcher:
    """Turns successive GET /api/alerts answers into 'fired' and 'resolved' lines."""

    def __init__(self, fetch: Callable[[], Any | None], log: Callable[[str], None]) -> None:
        # fetch returns the parsed JSON, or None while the endpoint is not there (404).
        self.fetch = fetch
        self.log = log
        self.states: dict[str, str] = {}
        self.fired = 0
        self.resolved = 0
        self.unavailable_said = False

    @property
    def firing(self) -> bool:
        return any(s == "firing" for s in self.states.values())

    def poll(self, elapsed: float) -> None:
        try:
            payload = self.fetch()
        except (httpx.HTTPError, ValueError) as exc:
            self.log(f"[{elapsed:5.0f}s] could not read alerts: {exc}")
            return
        if payload is None:
            if not self.unavailable_said:
                self.log(
                    f"[{elapsed:5.0f}s] GET /api/alerts is not available (404): "
                    "watch the dashboard instead"
                )
                self.unavailable_said = True
            return
        seen: dict[str, str] = {}
        for alert in _alert_items(payload):
            key = _alert_key(alert)
            state = _alert_state(alert)
            seen[key] = state
            before = self.states.get(key)
            if state == before:
                continue
            if state == "firing":
                self.fired += 1
                self.log(f"[{elapsed:5.0f}s] ALERT FIRING: {describe_alert(alert)}")
            elif state == "pending" and before is None:
                self.log(f"[{elapsed:5.0f}s] alert pending: {describe_alert(alert)}")
            elif state in ("resolved", "inactive") and before == "firing":
                self.resolved += 1
                self.log(f"[{elapsed:5.0f}s] ALERT RESOLVED: {describe_alert(alert)}")
        for key, before in self.states.items():
            # An API that lists only open alerts resolves one by leaving it out.
            if key not in seen and before == "firing":
                self.resolved += 1
                self.log(f"[{elapsed:5.0f}s] ALERT RESOLVED: {key}")
        self.states = seen


# --------------------------------------------------------------------------------------------
# Child processes: each in its own process group, so stopping takes its children along.


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((host, 0))
        port: int = s.getsockname()[1]
        return port


def port_in_use(host: str, port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.settimeout(0.5)
        return s.connect_ex((host, port)) == 0


def _die_with_parent() -> None:
    """In the child before exec: get SIGTERM if the demo dies without cleaning up (Linux)."""
    os.setsid()
    if sys.platform.startswith("linux"):
        with contextlib.suppress(OSError, AttributeError):
            libc = ctypes.CDLL(None, use_errno=True)
            libc.prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG


@dataclass
class Child:
    name: str
    proc: subprocess.Popen[bytes]
    log_path: Path
    _log_file: IO[bytes] | None = None

    def alive(self) -> bool:
        return self.proc.poll() is None

    def log_tail(self, lines: int = 20) -> str:
        try:
            text = self.log_path.read_text(errors="replace")
        except OSError:
            return ""
        return "\n".join(text.splitlines()[-lines:])

    def stop(self, timeout: float = 5.0) -> None:
        """SIGTERM the whole process group, SIGKILL what is left after `timeout`."""
        try:
            if self.proc.poll() is None:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(self.proc.pid, signal.SIGTERM)
                with contextlib.suppress(subprocess.TimeoutExpired):
                    self.proc.wait(timeout)
            # The leader may be gone while its children (the Cog worker) linger: sweep the group.
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(self.proc.pid, signal.SIGKILL)
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.proc.wait(timeout)
        finally:
            if self._log_file is not None:
                self._log_file.close()
                self._log_file = None


def start_child(
    name: str, argv: Sequence[str], *, cwd: Path | None, env: Mapping[str, str], log_path: Path
) -> Child:
    log_path.parent.mkdir(parents=True, exist_ok=True)
    log_file = log_path.open("ab")
    try:
        # argv is built in this module from the running interpreter and fixed flags.
        proc = subprocess.Popen(  # noqa: S603
            list(argv),
            cwd=cwd,
            env=dict(env),
            stdin=subprocess.DEVNULL,
            stdout=log_file,
            stderr=subprocess.STDOUT,
            preexec_fn=_die_with_parent,  # the demo starts no threads of its own
        )
    except BaseException:
        log_file.close()
        raise
    return Child(name, proc, log_path, log_file)


def cog_server_env(
    port: int, *, token: str | None, python: str = sys.executable, base: Mapping[str, str] | None
) -> dict[str, str]:
    """The environment `python -m cog.server.http` needs for the test model."""
    env = dict(os.environ if base is None else base)
    # coglet spawns its worker as `python` from PATH: the venv holding cog must come first.
    env["PATH"] = str(Path(python).parent) + os.pathsep + env.get("PATH", "")
    # coglet 0.23 reads no cog.yaml: `cog build` turns it into these variables.
    env["COG_PREDICT_TYPE_STUB"] = "predict.py:Predictor"
    env["PORT"] = str(port)
    if token:
        env["WEBHOOK_AUTH_TOKEN"] = token
    else:
        env.pop("WEBHOOK_AUTH_TOKEN", None)
    return env


def start_cog_server(
    model_dir: Path,
    port: int,
    *,
    token: str | None,
    log_path: Path,
    host: str = "127.0.0.1",
    python: str = sys.executable,
    base_env: Mapping[str, str] | None = None,
) -> Child:
    if not (model_dir / "predict.py").is_file():
        raise FileNotFoundError(f"no predict.py in {model_dir}")
    env = cog_server_env(port, token=token, python=python, base=base_env)
    argv = [python, "-m", "cog.server.http", "--host", host]
    return start_child("cog server", argv, cwd=model_dir, env=env, log_path=log_path)


def start_hookwatch(
    host: str,
    port: int,
    *,
    database_url: str,
    token: str,
    log_path: Path,
    config: Path | None = None,
    python: str = sys.executable,
) -> Child:
    # Inherited HOOKWATCH_* settings (a production database, real notifiers) stay out of the
    # demo; --config is the explicit way to bring notifiers in.
    env = {k: v for k, v in os.environ.items() if not k.startswith("HOOKWATCH_")}
    env["HOOKWATCH_DATABASE_URL"] = database_url
    env["HOOKWATCH_INGEST_TOKEN"] = token
    if config is not None:
        env["HOOKWATCH_CONFIG"] = str(config)
    argv = [python, "-m", "hookwatch", "serve", "--host", host, "--port", str(port)]
    argv += ["--log-level", "warning"]
    return start_child("hookwatch", argv, cwd=None, env=env, log_path=log_path)


class DemoError(Exception):
    pass


def wait_until(
    ready: Callable[[], bool],
    child: Child,
    timeout: float,
    *,
    now: Callable[[], float] = time.monotonic,
    sleep: Callable[[float], None] = time.sleep,
) -> None:
    """Poll ready() until it holds; fail fast if the child exits, or after `timeout` seconds."""
    deadline = now() + timeout
    while True:
        if not child.alive():
            raise DemoError(
                f"{child.name} exited with {child.proc.returncode}; its log "
                f"({child.log_path}) ends with:\n{child.log_tail()}"
            )
        with contextlib.suppress(httpx.HTTPError, ValueError):
            if ready():
                return
        if now() >= deadline:
            raise DemoError(
                f"{child.name} not ready after {timeout:.0f}s; its log ({child.log_path}) "
                f"ends with:\n{child.log_tail()}"
            )
        sleep(0.25)


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


# --------------------------------------------------------------------------------------------
# The command.


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


def _say(message: str) -> None:
    print(message, flush=True)


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
        _say(f"hookwatch demo: the test model is not at {model_dir} (use --model-dir)")
        return 2
    for what, port in (("hookwatch", args.port), ("the Cog server", args.cog_port)):
        if port_in_use("127.0.0.1", port):
            _say(
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
        _say("\nstopping…")
        return 130
    except DemoError as exc:
        _say(f"hookwatch demo: {exc}")
        return 1
    finally:
        for child in reversed(children):
            child.stop()
        if own_dir:
            shutil.rmtree(data_dir, ignore_errors=True)
        else:
            _say(f"database and logs kept in {data_dir}")


def _run(
    args: argparse.Namespace, model_dir: Path, data_dir: Path, token: str, children: list[Child]
) -> int:
    host, port = args.host, args.port
    base = f"http://{host}:{port}"
    cog_url = f"http://127.0.0.1:{args.cog_port}"
    db_url = f"sqlite:///{data_dir / 'hookwatch-demo.db'}"
    _say(f"starting hookwatch on {base} (database {data_dir / 'hookwatch-demo.db'})")
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
    _say(f"starting the test model under the Cog server on {cog_url} (model {model_dir})")
    children.append(
        start_cog_server(
            model_dir, args.cog_port, token=token, log_path=data_dir / "cog-server.log"
        )
    )
    hook = webhook_url(host, port, DEMO_MODEL, DEMO_DEPLOYMENT)
    with httpx.Client() as client:
        wait_until(lambda: hookwatch_ready(client, base), children[0], 60)
        _say("hookwatch is up")
        wait_until(lambda: cog_ready(client, cog_url), children[1], 120)
        _say("the Cog server is ready")
        _say(f"\n  dashboard    {base}/\n  webhook URL  {hook}\n  logs         {data_dir}\n")

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

        watcher = AlertWatcher(fetch_alerts, _say)
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
            log=_say,
            tick=tick,
            alert_firing=lambda: watcher.firing,
        )
        _say("driving predictions; Ctrl-C stops the demo")
        stats = driver.run(duration=args.duration)
        _say(f"done: {stats.summary()}; alerts fired {watcher.fired}, resolved {watcher.resolved}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
