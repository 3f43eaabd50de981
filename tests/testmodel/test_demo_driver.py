"""The demo's traffic plan, driver and alert watcher on an injected clock; its process handling."""

from __future__ import annotations

import json
import os
import random
import signal
import socket
import subprocess
import sys
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, ClassVar

import httpx
import pytest

from hookwatch.demo import main
from hookwatch.demo.children import port_in_use, start_child
from hookwatch.demo.driver import Driver, SubmitError
from hookwatch.demo.endpoints import predict
from hookwatch.demo.plan import DEFAULT_PLAN, DEMO_FAILURES, Phase, choose_outcome, phase_at
from hookwatch.demo.watcher import AlertWatcher
from tests.conftest import free_port, until


class FakeClock:
    def __init__(self) -> None:
        self.t = 1000.0
        self.slept = 0.0

    def now(self) -> float:
        return self.t

    def sleep(self, seconds: float) -> None:
        assert seconds >= 0
        self.t += seconds
        self.slept += seconds


@dataclass
class FakeCog:
    """Answers like the Cog server: success succeeds, any failure outcome fails."""

    clock: FakeClock
    latency: float = 0.02
    sent: list[tuple[float, str, int]] = field(default_factory=list)

    def submit(self, outcome: str, seed: int) -> str:
        self.sent.append((self.clock.t, outcome, seed))
        self.clock.t += self.latency
        return "succeeded" if outcome == "success" else "failed"


@dataclass
class RuleModel:
    """The built-in rule as DESIGN.md states it: error rate > threshold over a window, with at
    least min_predictions, held `for_s` to fire, cleared `keep_s` to resolve."""

    for_s: float
    keep_s: float = 120.0
    window: float = 600.0
    threshold: float = 0.20
    min_predictions: int = 20
    true_since: float | None = None
    false_since: float | None = None
    firing: bool = False
    fired_at: float | None = None
    resolved_at: float | None = None
    first_true: float | None = None

    def evaluate(self, now: float, sent: list[tuple[float, str, int]]) -> None:
        recent = [o for t, o, _ in sent if now - self.window < t <= now]
        failed = sum(o != "success" for o in recent)
        holds = len(recent) >= self.min_predictions and failed / len(recent) > self.threshold
        if holds:
            self.first_true = self.first_true if self.first_true is not None else now
            self.true_since = self.true_since if self.true_since is not None else now
            self.false_since = None
            if not self.firing and now - self.true_since >= self.for_s:
                self.firing, self.fired_at = True, now
        else:
            self.true_since = None
            self.false_since = self.false_since if self.false_since is not None else now
            if self.firing and now - self.false_since >= self.keep_s:
                self.firing, self.resolved_at = False, now


def test_phase_at_walks_the_plan() -> None:
    plan = [Phase("a", 10, 1, 0), Phase("b", 5, 1, 1), Phase("c", None, 1, 0)]
    assert phase_at(plan, 0) == (0, plan[0])
    assert phase_at(plan, 9.99) == (0, plan[0])
    assert phase_at(plan, 10) == (1, plan[1])
    assert phase_at(plan, 15) == (2, plan[2])
    assert phase_at(plan, 1e9) == (2, plan[2])
    assert phase_at(plan[:2], 15) is None
    with pytest.raises(ValueError):
        phase_at(plan, -1)


def test_choose_outcome_keeps_to_the_failure_rate() -> None:
    rng = random.Random(1)
    assert {choose_outcome(Phase("ok", 1, 1, 0.0), rng) for _ in range(500)} == {"success"}
    assert {choose_outcome(Phase("bad", 1, 1, 1.0), rng) for _ in range(500)} == set(DEMO_FAILURES)
    draws = [choose_outcome(Phase("mix", 1, 1, 0.85), rng) for _ in range(4000)]
    assert 0.82 < sum(d != "success" for d in draws) / len(draws) < 0.88
    assert "hang" not in draws and "crash" not in draws


def test_driver_keeps_each_phase_rate_and_mix() -> None:
    clock = FakeClock()
    cog = FakeCog(clock)
    plan = [Phase("calm", 10, 2.0, 0.0), Phase("storm", 20, 1.0, 1.0), Phase("calm", 10, 4.0, 0)]
    lines: list[str] = []
    stats = Driver(
        plan, cog.submit, now=clock.now, sleep=clock.sleep, rng=random.Random(3), log=lines.append
    ).run()
    start = 1000.0
    by_phase = Counter(
        ("calm1" if t < start + 10 else "storm" if t < start + 30 else "calm2", o != "success")
        for t, o, _ in cog.sent
    )
    assert by_phase == {("calm1", False): 20, ("storm", True): 20, ("calm2", False): 40}
    assert stats.sent == 80 and stats.statuses == {"succeeded": 60, "failed": 20}
    assert stats.phases == ["calm", "storm", "calm"]
    assert sum("phase " in line for line in lines) == 3
    assert clock.t == pytest.approx(start + 40, abs=0.5)  # it waited, it did not spin


def test_driver_does_not_race_to_catch_up_after_a_slow_prediction() -> None:
    clock = FakeClock()
    cog = FakeCog(clock, latency=5.0)  # each prediction takes 5 s; the plan wants 2 a second
    Driver(
        [Phase("slow", 20, 2.0, 0.0)],
        cog.submit,
        now=clock.now,
        sleep=clock.sleep,
        rng=random.Random(0),
        log=lambda _m: None,
    ).run()
    assert len(cog.sent) == 4  # one after another, not a backlog of 40


def test_duration_and_should_stop_end_the_run() -> None:
    clock = FakeClock()
    cog = FakeCog(clock)
    driver = Driver(
        [Phase("forever", None, 1.0, 0.0)],
        cog.submit,
        now=clock.now,
        sleep=clock.sleep,
        rng=random.Random(0),
        log=lambda _m: None,
    )
    driver.run(duration=30)
    assert 29 <= len(cog.sent) <= 31 and clock.t <= 1000 + 30.5
    before = len(cog.sent)
    driver.run(should_stop=lambda: len(cog.sent) >= before + 5)
    assert len(cog.sent) == before + 5


def test_submit_errors_are_counted_and_not_fatal() -> None:
    clock = FakeClock()
    lines: list[str] = []

    def refuse(outcome: str, seed: int) -> str:
        clock.t += 0.01
        raise SubmitError("the Cog server is busy with another prediction (409)")

    stats = Driver(
        [Phase("p", 10, 1.0, 0.0)],
        refuse,
        now=clock.now,
        sleep=clock.sleep,
        rng=random.Random(0),
        log=lines.append,
    ).run()
    assert stats.sent == 10 and stats.submit_errors == 10 and not stats.statuses
    assert sum("not accepted" in line for line in lines) == 3  # said, then not repeated
    assert "10 not accepted" in stats.summary()


def test_tick_runs_on_its_interval() -> None:
    clock = FakeClock()
    ticks: list[float] = []
    Driver(
        [Phase("p", 21, 0.5, 0.0)],
        FakeCog(clock).submit,
        now=clock.now,
        sleep=clock.sleep,
        rng=random.Random(0),
        log=lambda _m: None,
        tick=ticks.append,
        tick_interval=5.0,
    ).run()
    assert [round(t) for t in ticks] == [0, 5, 10, 15, 20]


def test_a_firing_alert_ends_the_burst_early_but_not_before_min_seconds() -> None:
    clock = FakeClock()
    cog = FakeCog(clock)
    plan = [
        Phase("healthy", 10, 1.0, 0.0),
        Phase("burst", 100, 1.0, 1.0, ends_on_alert=True, min_seconds=20),
        Phase("after", 10, 1.0, 0.0),
    ]
    lines: list[str] = []
    Driver(
        plan,
        cog.submit,
        now=clock.now,
        sleep=clock.sleep,
        rng=random.Random(0),
        log=lines.append,
        alert_firing=lambda: clock.t >= 1000 + 15,  # "fires" 5 s into the burst
    ).run()
    burst_times = [t - 1000 for t, o, _ in cog.sent if o != "success"]
    assert min(burst_times) >= 10 and max(burst_times) < 30.5  # min_seconds held it to 20 s
    assert any("ending 'burst' early" in line for line in lines)
    assert clock.t == pytest.approx(1000 + 40, abs=0.5)


@pytest.mark.parametrize(("for_s", "keep_s"), [(0.0, 0.0), (60.0, 120.0)])
def test_default_plan_fires_the_builtin_rule_and_then_resolves(for_s: float, keep_s: float) -> None:
    """With the built-in rule (20% over 10m, >= 20 predictions, no `for`) and with the example
    in DESIGN.md (`for` 1m, keep_firing_for 2m), the default plan must fire soon after the
    burst starts and resolve while the demo still runs."""
    clock = FakeClock()
    cog = FakeCog(clock)
    rule = RuleModel(for_s=for_s, keep_s=keep_s)
    Driver(
        DEFAULT_PLAN,
        cog.submit,
        now=clock.now,
        sleep=clock.sleep,
        rng=random.Random(42),
        log=lambda _m: None,
        tick=lambda _e: rule.evaluate(clock.t, cog.sent),
        alert_firing=lambda: rule.firing,
        tick_interval=1.0,
    ).run(duration=600)
    burst_start = 1000 + DEFAULT_PLAN[0].seconds  # type: ignore[operator]
    assert rule.first_true is not None and rule.first_true - burst_start < 20
    assert rule.fired_at is not None and rule.fired_at - rule.first_true <= for_s + 2
    assert rule.resolved_at is not None, "the alert never resolved"
    assert rule.resolved_at - 1000 < 6 * 60  # the whole story in a few minutes
    # Up long enough for a person to open the dashboard and look at it.
    assert rule.resolved_at - rule.fired_at >= 60, rule.resolved_at - rule.fired_at
    assert not rule.firing


def test_alert_watcher_reports_fired_and_resolved() -> None:
    answers: list[Any] = [
        None,
        None,
        [],
        [{"id": 7, "state": "pending", "rule": "deployment-error-rate", "scope_name": "demo"}],
        {"alerts": [{"id": 7, "state": "firing", "rule": "deployment-error-rate",
                     "scope": "deployment", "scope_name": "demo", "value": 0.62}]},
        {"alerts": [{"id": 7, "state": "firing", "rule": "deployment-error-rate"}]},
        [{"id": 7, "state": "resolved", "rule": "deployment-error-rate"}],
        [{"id": 8, "status": "firing", "rule": "model-error-rate"}],
        [],
    ]  # fmt: skip
    lines: list[str] = []
    watcher = AlertWatcher(lambda: answers.pop(0), lines.append)
    seen_firing = []
    for i in range(9):
        watcher.poll(float(i))
        seen_firing.append(watcher.firing)
    assert seen_firing == [False, False, False, False, True, True, False, True, False]
    assert watcher.fired == 2 and watcher.resolved == 2
    text = "\n".join(lines)
    assert text.count("not available (404)") == 1
    assert "alert pending: deployment-error-rate" in text
    assert "ALERT FIRING: deployment-error-rate on deployment demo (value 62%)" in text
    assert text.count("ALERT FIRING") == 2 and text.count("ALERT RESOLVED") == 2


def test_alert_watcher_survives_a_broken_answer() -> None:
    lines: list[str] = []

    def broken() -> Any:
        raise ValueError("Expecting value: line 1 column 1")

    watcher = AlertWatcher(broken, lines.append)
    watcher.poll(3.0)
    assert not watcher.firing and "could not read alerts" in lines[0]


# Process handling: real processes, no Cog server needed.


def test_child_stop_takes_the_whole_process_group(tmp_path: Path) -> None:
    script = (
        "import subprocess, sys, time\n"
        "p = subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(60)'])\n"
        "print(p.pid, flush=True)\n"
        "time.sleep(60)\n"
    )
    log = tmp_path / "child.log"
    child = start_child(
        "sleeper", [sys.executable, "-c", script], cwd=None, env=os.environ, log_path=log
    )
    try:
        until(lambda: log.read_text().strip(), timeout=20, what="the child's first line")
        grandchild = int(log.read_text().split()[0])
        assert os.getpgid(grandchild) == child.proc.pid  # own group, led by the child
    finally:
        child.stop(timeout=5)
    assert not child.alive()
    # Gone, or a zombie its new parent has yet to reap: either way it no longer runs.
    until(lambda: process_state(grandchild) in (None, "Z"), timeout=5,
          what=f"grandchild {grandchild} stopped")


def process_state(pid: int) -> str | None:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return None
    return stat.rsplit(")", 1)[1].split()[0]


def test_main_refuses_a_taken_port_and_a_missing_model(tmp_path: Path) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        taken = s.getsockname()[1]
        assert port_in_use("127.0.0.1", taken)
        assert main(["--port", str(taken), "--cog-port", str(free_port())]) == 2
    assert main(["--model-dir", str(tmp_path), "--port", str(free_port())]) == 2


@pytest.mark.cog
@pytest.mark.slow
@pytest.mark.timeout(120)
def test_demo_runs_and_ctrl_c_stops_it_with_its_children(tmp_path: Path) -> None:
    """The whole demo as a user runs it: hookwatch + Cog server + traffic, then Ctrl-C."""
    pytest.importorskip("coglet")
    port, cog_port = free_port(), free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "hookwatch.demo", "--port", str(port),
         "--cog-port", str(cog_port), "--data-dir", str(tmp_path), "--seed", "5"],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )  # fmt: skip
    lines: list[str] = []
    try:
        assert proc.stdout is not None
        deadline = time.monotonic() + 90
        for line in proc.stdout:
            lines.append(line)
            if "phase 1/4" in line:
                break
            assert time.monotonic() < deadline, "".join(lines)
        assert lines and "phase 1/4" in lines[-1], "".join(lines)

        def recorded() -> list[dict[str, Any]]:
            url = f"http://127.0.0.1:{port}/api/predictions"
            found: list[dict[str, Any]] = httpx.get(url, params={"deployment": "demo"}).json()
            return found

        until(lambda: len(recorded()) >= 3, timeout=30, what="a few predictions (2/s)")
        predictions = recorded()
        assert {r["model"] for r in predictions} == {"hookwatch/testmodel"}
        assert {r["status"] for r in predictions} <= {"processing", "succeeded"}
        proc.send_signal(signal.SIGINT)
        rest, _ = proc.communicate(timeout=30)
        lines.append(rest)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    out = "".join(lines)
    assert proc.returncode == 130, out
    assert f"dashboard    http://127.0.0.1:{port}/" in out
    assert "phase 1/4 'healthy'" in out
    assert "stopping" in out
    until(lambda: not port_in_use("127.0.0.1", port), timeout=5,
          what="hookwatch gone with the demo (its port free)")
    until(lambda: not port_in_use("127.0.0.1", cog_port), timeout=5,
          what="the Cog server gone with the demo (its port free)")
    assert (tmp_path / "hookwatch-demo.db").exists()


class BusyThenFree(BaseHTTPRequestHandler):
    """A Cog-server stand-in that answers 409 to the first `busy` predictions."""

    busy = 2
    seen: ClassVar[list[dict[str, Any]]] = []

    def do_POST(self) -> None:
        body = json.loads(self.rfile.read(int(self.headers["content-length"])))
        type(self).seen.append(body)
        if len(type(self).seen) <= type(self).busy:
            status, answer = 409, {"error": "At capacity - all prediction slots busy"}
        else:
            status, answer = 200, {"id": body.get("id"), "status": "succeeded"}
        data = json.dumps(answer).encode()
        self.send_response(status)
        self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, *_args: Any) -> None:
        pass


@pytest.mark.parametrize(("busy", "accepted"), [(2, True), (50, False)])
def test_predict_waits_out_a_briefly_busy_server(busy: int, accepted: bool) -> None:
    BusyThenFree.busy, BusyThenFree.seen = busy, []
    server = ThreadingHTTPServer(("127.0.0.1", 0), BusyThenFree)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    url = f"http://127.0.0.1:{server.server_address[1]}"
    try:
        with httpx.Client() as client:

            def call() -> dict[str, Any]:
                return predict(
                    client, url, {"outcome": "success"}, webhook="http://x/h?model=m",
                    prediction_id="p1", busy_wait=0.3,
                )  # fmt: skip

            if accepted:
                assert call()["status"] == "succeeded"
                assert len(BusyThenFree.seen) == 3
            else:
                with pytest.raises(SubmitError, match="409"):
                    call()
                assert 3 <= len(BusyThenFree.seen) < 20  # backed off, then gave up
    finally:
        server.shutdown()
        server.server_close()
    first = BusyThenFree.seen[0]
    assert first["id"] == "p1" and first["webhook_events_filter"] == ["start", "completed"]
