"""Real `hookwatch serve` processes on one database, for the scale-out tests."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

import httpx
from sqlalchemy import Engine, text

from tests.conftest import SECRET, free_port, until

ROOT = Path(__file__).resolve().parents[2]


def terminate(engine: Engine, name: str) -> None:
    """End a replica's database session from the server side, as a crashed process's would."""
    with engine.connect() as conn:
        ended = conn.execute(
            text("SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                 "WHERE application_name = :n"),
            {"n": f"hookwatch {name}"},
        ).scalars().all()
    assert ended == [True]


class Replica:
    """One `hookwatch serve` subprocess on a free port, its output in a log file."""

    def __init__(self, name: str, *, database_url: str, config: Path, logs: Path,
                 env: dict[str, str] | None = None) -> None:
        self.name = name
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log = logs / f"{name}.log"
        self.env = {k: v for k, v in os.environ.items() if not k.startswith("HOOKWATCH_")}
        self.env.update({
            "HOOKWATCH_DATABASE_URL": database_url,
            "HOOKWATCH_WEBHOOK_SECRETS": SECRET,
            "PYTHONUNBUFFERED": "1",
            **(env or {}),
        })
        self.config = config
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> Replica:
        with self.log.open("wb") as out:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "hookwatch", "serve", "--port", str(self.port),
                 "--config", str(self.config), "--log-level", "warning"],
                env=self.env, cwd=ROOT, stdout=out, stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        return self

    def readyz(self) -> dict[str, Any] | None:
        try:
            answer: dict[str, Any] = httpx.get(self.url + "/readyz", timeout=2).json()
            return answer
        except (httpx.HTTPError, ValueError):
            return None

    def role(self) -> str | None:
        ready = self.readyz()
        return ready["checks"]["leadership"]["role"] if ready else None

    def wait_role(self, role: str, timeout: float = 30.0) -> float:
        try:
            return until(lambda: self.role() == role, timeout, f"{self.name} {role}")
        except AssertionError:
            raise AssertionError(f"{self.name} never became {role}:\n{self.output()}") from None

    def output(self) -> str:
        return self.log.read_text(errors="replace")[-4000:]

    def kill(self) -> None:
        """SIGKILL: no shutdown code runs; the OS closes its database sessions."""
        assert self.proc is not None
        os.killpg(self.proc.pid, signal.SIGKILL)
        self.proc.wait(timeout=10)

    def stop(self) -> None:
        if self.proc is None or self.proc.poll() is not None:
            return
        os.killpg(self.proc.pid, signal.SIGTERM)
        try:
            self.proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(timeout=10)
