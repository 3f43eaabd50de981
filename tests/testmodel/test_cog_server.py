"""The test model under the real Cog server (coglet); its webhooks checked at both ends."""

from __future__ import annotations

import json
import secrets
import threading
import time
import warnings
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import pytest

from hookwatch.demo.children import Child, start_cog_server, start_hookwatch, wait_until
from hookwatch.demo.endpoints import cog_ready, hookwatch_ready, predict, webhook_url
from tests.conftest import free_port
from tests.testmodel.conftest import MODEL_DIR

pytest.importorskip("coglet")
pytestmark = [pytest.mark.cog, pytest.mark.timeout(90)]

TOKEN = "cog-test-" + secrets.token_hex(8)
TERMINAL = {"succeeded", "failed", "canceled"}

# outcome -> (final status, a piece of the error Cog reports)
EXPECTED = {
    "success": ("succeeded", None),
    "error": ("failed", "TestModelError: testmodel failed on purpose"),
    "cuda_oom": ("failed", "OutOfMemoryError: CUDA out of memory. Tried to allocate"),
    "nan": ("failed", "NonFiniteOutputError: output statistic is nan"),
    "bad_return_type": ("failed", "Failed to serialize output: TypeError"),
}


def server_device() -> str:
    """Where the model computes in the Cog server, which runs this same interpreter."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)  # "Failed to initialize NumPy"
            import torch
    except ImportError:
        return "python"
    return "cuda" if torch.cuda.is_available() else "cpu"


@dataclass
class Hook:
    path: str
    authorization: str | None
    body: dict[str, Any]


@dataclass
class Receiver:
    """A real HTTP endpoint that records each webhook, the way a Cog server's target sees it."""

    url: str
    hooks: list[Hook] = field(default_factory=list)
    cond: threading.Condition = field(default_factory=threading.Condition)

    def for_id(self, pid: str) -> list[Hook]:
        with self.cond:
            return [h for h in self.hooks if h.body.get("id") == pid]

    def wait(self, check: Callable[[], bool], timeout: float = 15.0) -> None:
        deadline = time.monotonic() + timeout
        with self.cond:
            while not check():
                left = deadline - time.monotonic()
                assert left > 0, f"timed out; received: {[h.body for h in self.hooks]}"
                self.cond.wait(left)


@pytest.fixture(scope="module")
def receiver() -> Iterator[Receiver]:
    recorded = Receiver(url="")

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("content-length", 0)))
            with recorded.cond:
                recorded.hooks.append(
                    Hook(self.path, self.headers.get("authorization"), json.loads(body))
                )
                recorded.cond.notify_all()
            self.send_response(200)
            self.end_headers()

        def log_message(self, *_args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    recorded.url = f"http://127.0.0.1:{server.server_address[1]}/hooks/replicate"
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield recorded
    finally:
        server.shutdown()
        server.server_close()


def start_ready_cog(log_path: Path) -> tuple[Child, str]:
    port = free_port()
    child = start_cog_server(MODEL_DIR, port, token=TOKEN, log_path=log_path)
    url = f"http://127.0.0.1:{port}"
    try:
        with httpx.Client() as client:
            wait_until(lambda: cog_ready(client, url), child, 60)
    except BaseException:
        child.stop()
        raise
    return child, url


@pytest.fixture(scope="module")
def cog(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    child, url = start_ready_cog(tmp_path_factory.mktemp("cog") / "cog-server.log")
    try:
        yield url
    finally:
        child.stop()
    assert not child.alive()


@pytest.fixture(scope="module")
def client() -> Iterator[httpx.Client]:
    with httpx.Client() as c:
        yield c


def run_prediction(
    client: httpx.Client, cog: str, hook: str, outcome: str, pid: str
) -> dict[str, Any]:
    model_input = {"outcome": outcome, "size": 16, "log_lines": 2, "seed": 11}
    return predict(client, cog, model_input, webhook=hook, prediction_id=pid)


def wait_for_lifecycle(receiver: Receiver, pid: str) -> list[Hook]:
    """The webhooks of one prediction once its start and terminal events are both in."""

    def complete() -> bool:
        hooks = receiver.for_id(pid)
        return len(hooks) >= 2 and any(h.body.get("status") in TERMINAL for h in hooks)

    receiver.wait(complete)
    time.sleep(0.3)  # room for a stray extra webhook to arrive, so a duplicate would show
    return receiver.for_id(pid)


@pytest.mark.parametrize("outcome", list(EXPECTED))
def test_outcome_webhooks_end_with_the_right_status(
    outcome: str, cog: str, client: httpx.Client, receiver: Receiver
) -> None:
    status, error = EXPECTED[outcome]
    pid = f"rx-{outcome}-{secrets.token_hex(3)}"
    result = run_prediction(client, cog, receiver.url + "?model=t/m&deployment=d", outcome, pid)
    assert result["status"] == status, result
    hooks = wait_for_lifecycle(receiver, pid)
    statuses = [h.body.get("status") for h in hooks]
    # start ("processing") and completed, once each. coglet sends them from separate tasks, so
    # their arrival order is not guaranteed: hookwatch has to cope with either.
    assert sorted(statuses) == sorted(["processing", status]), [h.body for h in hooks]
    terminal = [h for h in hooks if h.body.get("status") in TERMINAL]
    assert all(h.authorization == f"Bearer {TOKEN}" for h in hooks)
    assert all(h.path.endswith("?model=t/m&deployment=d") for h in hooks)
    body = terminal[0].body
    if error is None:
        assert body.get("error") is None
        assert body["output"]["outcome"] == "success"
        assert body["output"]["device"] == server_device()
    else:
        assert error in body["error"]
        assert "output" not in body or body["output"] is None
    assert f"chosen={outcome}" in body["logs"]


def test_hang_keeps_processing_until_canceled(
    cog: str, client: httpx.Client, receiver: Receiver
) -> None:
    pid = f"rx-hang-{secrets.token_hex(3)}"
    r = client.post(
        f"{cog}/predictions",
        json={
            "id": pid,
            "input": {"outcome": "hang", "size": 4},
            "webhook": receiver.url,
            "webhook_events_filter": ["start", "completed"],
        },
        headers={"Prefer": "respond-async"},
    )
    assert r.status_code == 202, r.text
    try:
        receiver.wait(lambda: bool(receiver.for_id(pid)))
        time.sleep(1.5)
        # Still working: no terminal webhook, and the single slot turns others away.
        assert [h.body["status"] for h in receiver.for_id(pid)] == ["processing"]
        busy = client.post(f"{cog}/predictions", json={"input": {"outcome": "success"}})
        assert busy.status_code == 409
    finally:
        # Always free the slot, or every later test in this module meets a busy server.
        assert client.post(f"{cog}/predictions/{pid}/cancel").status_code == 200
    receiver.wait(lambda: any(h.body["status"] == "canceled" for h in receiver.for_id(pid)))
    # Canceled cleanly: the worker is free again.
    after = run_prediction(client, cog, receiver.url, "success", f"rx-after-{secrets.token_hex(3)}")
    assert after["status"] == "succeeded"


def test_hookwatch_records_each_outcome_once(
    cog: str, client: httpx.Client, tmp_path: Path
) -> None:
    port = free_port()
    hookwatch = start_hookwatch(
        "127.0.0.1",
        port,
        database_url=f"sqlite:///{tmp_path / 'hookwatch.db'}",
        token=TOKEN,
        log_path=tmp_path / "hookwatch.log",
    )
    base = f"http://127.0.0.1:{port}"
    deployment = f"cogtest-{secrets.token_hex(3)}"
    try:
        wait_until(lambda: hookwatch_ready(client, base), hookwatch, 60)
        hook = webhook_url("127.0.0.1", port, "hookwatch/testmodel", deployment)
        sent = {f"hw-{o}-{secrets.token_hex(3)}": o for o in EXPECTED}
        for pid, outcome in sent.items():
            assert run_prediction(client, cog, hook, outcome, pid)["status"] == EXPECTED[outcome][0]

        def recorded(pid: str) -> dict[str, Any] | None:
            r = client.get(f"{base}/api/predictions/{pid}")
            return r.json() if r.status_code == 200 else None

        deadline = time.monotonic() + 20
        rows: dict[str, dict[str, Any] | None] = {}
        while time.monotonic() < deadline:
            rows = {pid: recorded(pid) for pid in sent}
            if all(r is not None and r["status"] in TERMINAL for r in rows.values()):
                break
            time.sleep(0.2)
        for pid, outcome in sent.items():
            row = rows[pid]
            assert row is not None, f"{pid} never recorded; log: {hookwatch.log_tail()}"
            status, error = EXPECTED[outcome]
            assert row["status"] == status
            assert row["model"] == "hookwatch/testmodel" and row["deployment"] == deployment
            assert row["event_count"] == 2  # start + completed, nothing doubled
            if error is None:
                assert row["error"] is None
            else:
                assert error in row["error"]
        failed = client.get(
            f"{base}/api/predictions", params={"status": "failed", "deployment": deployment}
        ).json()
        failing = sorted(pid for pid, o in sent.items() if EXPECTED[o][0] == "failed")
        assert sorted(r["id"] for r in failed) == failing  # each failure listed exactly once
    finally:
        hookwatch.stop()
    assert not hookwatch.alive()


def test_crash_fails_the_prediction_and_leaves_the_server_unhealthy(
    client: httpx.Client, receiver: Receiver, tmp_path: Path
) -> None:
    # A crash poisons the server's only slot, so it gets a Cog server of its own.
    child, url = start_ready_cog(tmp_path / "cog-crash.log")
    try:
        pid = f"rx-crash-{secrets.token_hex(3)}"
        result = run_prediction(client, url, receiver.url, "crash", pid)
        assert result["status"] == "failed"
        assert "crash" in result["error"].lower()
        hooks = wait_for_lifecycle(receiver, pid)
        assert sorted(h.body["status"] for h in hooks) == ["failed", "processing"]
        assert (
            "Worker crashed" in next(h for h in hooks if h.body["status"] == "failed").body["error"]
        )
        health = client.get(f"{url}/health-check").json()["status"]
        assert health in {"UNHEALTHY", "DEFUNCT"}
        refused = client.post(f"{url}/predictions", json={"input": {"outcome": "success"}})
        assert refused.status_code != 200
    finally:
        child.stop()
    assert not child.alive()
