"""`hookwatch simulate` as the README runs it (right after `serve &`, quiet per request); the banner."""

from __future__ import annotations

import asyncio
import subprocess
import sys
from pathlib import Path

import pytest

from hookwatch.simulate import wait_until_up
from tests.conftest import free_port
from tests.reliability.helpers import Serve

SECRET = "whsec_" + "MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"


def test_wait_until_up_gives_up_when_nothing_listens() -> None:
    url = f"http://127.0.0.1:{free_port()}/hooks/replicate"
    assert asyncio.run(wait_until_up(url, within=0.5)) is False


@pytest.mark.slow
def test_simulate_started_before_serve_loses_nothing(tmp_path: Path) -> None:
    env = {"HOOKWATCH_WEBHOOK_SECRETS": SECRET,
           "HOOKWATCH_DATABASE_URL": f"sqlite:///{tmp_path}/hw.db"}
    server = Serve(tmp_path, env)
    url = f"{server.url}/hooks/replicate"
    # simulate first, as `serve & simulate` does: the server is not up yet.
    sim = subprocess.Popen(
        [sys.executable, "-m", "hookwatch", "simulate", "--url", url, "--secret", SECRET,
         "--rate", "60", "--duration", "1", "--seed", "1"],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )
    try:
        server.start()
        out, _ = sim.communicate(timeout=60)
    finally:
        server.stop()
    assert sim.returncode == 0, out
    assert "refused 0" in out
    assert "HTTP Request:" not in out  # httpx's INFO line per request stays out


def test_banner_warns_when_links_would_point_at_loopback() -> None:
    from hookwatch.settings import Settings
    from hookwatch.startup import startup_banner

    public = startup_banner(Settings(host="0.0.0.0", port=8123), rules=1, notifiers=[])
    assert "listening on 0.0.0.0 without HOOKWATCH_PUBLIC_URL" in public
    assert "http://127.0.0.1:8123/" in public
    named = Settings(host="0.0.0.0", public_url="https://hooks.example.com")
    assert "PUBLIC_URL" not in startup_banner(named, rules=1, notifiers=[])
    assert "PUBLIC_URL" not in startup_banner(Settings(), rules=1, notifiers=[])
