"""The demo's child processes (hookwatch, the Cog server): started and stopped as process groups."""

from __future__ import annotations

import contextlib
import ctypes
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import IO

import httpx


class DemoError(Exception):
    """The demo cannot go on: a child failed to start or stopped; the message says why."""


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
    """A started child process, the leader of its own process group, logging to a file."""

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
    """Start argv in a new process group, stdout and stderr appended to log_path."""
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
    """The model in model_dir under the real Cog HTTP server (coglet) on host:port."""
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
    """`hookwatch serve` on host:port with its own database and ingest token."""
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
