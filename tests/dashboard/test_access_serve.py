"""Access from outside the process: a real `hookwatch serve` on loopback (open to this machine)
and on 0.0.0.0 (a token made once, kept 0600, a sign-in link printed), restarts, DNS
rebinding, the sign-in redirect and the rate limit, over real sockets."""

from __future__ import annotations

import os
import re
import socket
import stat
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import orjson
import pytest

from tests.conftest import SECRET, signed_headers
from tests.dashboard import helpers
from tests.reliability.helpers import Serve

HTML = {"accept": "text/html"}


def _env(tmp_path: Path, **more: str) -> dict[str, str]:
    return {"HOOKWATCH_DATABASE_URL": f"sqlite:///{tmp_path}/data/hookwatch.db",
            "HOOKWATCH_WEBHOOK_SECRETS": SECRET, "HOOKWATCH_WRITER_PROCESS": "false",
            "HOOKWATCH_DASHBOARD_TOKEN": "", "HOOKWATCH_VIEWER_TOKEN": "",
            "HOOKWATCH_PUBLIC_URL": "", "HOOKWATCH_DATA_DIR": "", **more}


@pytest.fixture
def serve(tmp_path: Path) -> Iterator[list[Serve]]:
    started: list[Serve] = []
    yield started
    for server in started:
        server.stop()


def _start(started: list[Serve], server: Serve) -> Serve:
    started.append(server)
    return server.start()


def _raw_get(port: int, target: str, host: str) -> tuple[int, dict[str, str]]:
    """One request with the target exactly as written (httpx would normalise it)."""
    with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
        sock.sendall(f"GET {target} HTTP/1.1\r\nHost: {host}\r\nAccept: text/html\r\n"
                     "Connection: close\r\n\r\n".encode())
        data = b""
        while chunk := sock.recv(65536):
            data += chunk
    head = data.split(b"\r\n\r\n", 1)[0].decode("latin-1").split("\r\n")
    headers = dict(line.split(": ", 1) for line in head[1:])
    return int(head[0].split()[1]), {k.lower(): v for k, v in headers.items()}


def _webhook(url: str, host: str) -> httpx.Response:
    body = orjson.dumps(helpers.body("succeeded", at=time.time()))
    return httpx.post(f"{url}/hooks/replicate", content=body,
                      headers={**signed_headers(body), "host": host})


def test_on_loopback_the_dashboard_is_open_to_this_machine_only(
    tmp_path: Path, serve: list[Serve]
) -> None:
    server = _start(serve, Serve(tmp_path, _env(tmp_path), "--host", "127.0.0.1"))
    assert "open to this machine only" in server.log_text()
    assert not (tmp_path / "data" / "dashboard-token").exists()
    assert httpx.get(server.url + "/api/status").status_code == 200
    assert httpx.get(server.url + "/", headers={"host": f"localhost:{server.port}"}
                     ).status_code == 200
    rebound = httpx.get(server.url + "/api/status", headers={"host": "rebind.evil.example"})
    assert rebound.status_code == 421 and rebound.json()["error"] == "unknown_host"
    silence = {"rule": "*", "scope": "*", "name": "*", "duration": "1h", "created_by": "m",
               "comment": "x"}
    refused = httpx.post(server.url + "/api/silences", json=silence,
                         headers={"host": f"rebind.evil.example:{server.port}",
                                  "origin": f"http://rebind.evil.example:{server.port}"})
    assert refused.status_code == 421
    assert httpx.get(server.url + "/api/silences").json()["silences"] == []
    assert _webhook(server.url, "hooks.example.com").status_code == 200  # any Host
    proxied = httpx.get(server.url + "/api/status", headers={"x-forwarded-for": "203.0.113.7"})
    assert proxied.status_code == 403 and proxied.json()["error"] == "local_only"


def test_on_any_other_address_a_token_is_made_once_and_kept_across_restarts(
    tmp_path: Path, serve: list[Serve]
) -> None:
    first = _start(serve, Serve(tmp_path, _env(tmp_path), "--host", "0.0.0.0"))
    log = first.log_text()
    token_file = tmp_path / "data" / "dashboard-token"
    assert f"private: token in {token_file} (made now)" in log
    assert stat.S_IMODE(token_file.stat().st_mode) == 0o600
    token = token_file.read_text().strip()
    assert len(token) >= 40 and token not in log  # the lasting token is never printed
    (link,) = re.findall(rf"http://127\.0\.0\.1:{first.port}/\?token=\S+", log)

    assert httpx.get(first.url + "/api/status").status_code == 401
    assert httpx.get(first.url + "/", headers=HTML).status_code == 401
    with httpx.Client() as browser:
        signed = browser.get(link, headers=HTML, follow_redirects=False)
        assert signed.status_code == 303 and signed.headers["location"] == "/"
        assert browser.get(first.url + "/api/status").status_code == 200  # the cookie
        cookie = dict(browser.cookies)
    assert httpx.get(link).status_code == 401  # the link works once
    bearer = {"authorization": f"Bearer {token}"}
    assert httpx.get(first.url + "/api/status", headers=bearer).status_code == 200
    # Rebinding: a page on rebind.evil.example (resolved to this machine) gets nothing, even
    # from a browser holding the cookie (it would not send it there; here it is forced to).
    assert httpx.get(first.url + "/api/status", cookies=cookie,
                     headers={"host": "rebind.evil.example"}).status_code == 421
    assert _webhook(first.url, "hooks.example.com").status_code == 200
    assert httpx.get(first.url + "/healthz", headers={"host": "10.0.0.9"}).status_code == 200
    first.stop()

    second = _start(serve, Serve(tmp_path, _env(tmp_path), "--host", "0.0.0.0"))
    assert "(kept from an earlier start)" in second.log_text()
    assert token_file.read_text().strip() == token
    assert httpx.get(second.url + "/api/status", cookies=cookie).status_code == 200
    (new_link,) = re.findall(r"http://127\.0\.0\.1:\d+/\?token=\S+", second.logs[-1].read_text())
    assert new_link.split("token=")[1] != link.split("token=")[1]


def test_the_sign_in_link_redirects_only_to_our_own_paths_and_guesses_are_limited(
    tmp_path: Path, serve: list[Serve]
) -> None:
    env = _env(tmp_path, HOOKWATCH_DASHBOARD_TOKEN="a-configured-dashb0ard-token")
    server = _start(serve, Serve(tmp_path, env, "--host", "127.0.0.1"))
    assert "private: HOOKWATCH_DASHBOARD_TOKEN" in server.log_text()
    host = f"127.0.0.1:{server.port}"
    token = "a-configured-dashb0ard-token"
    for target, location in (
        ("/%09/evil.example/", "/"), ("/%0d%0a/evil.example/", "/"), ("//evil.example/", "/"),
        ("/%2F/evil.example/", "/"), ("/%5C/evil.example/", "/"), ("/%5Cevil.example/", "/"),
        ("/predictions/p1", "/predictions/p1"),
    ):
        status, headers = _raw_get(server.port, f"{target}?token={token}&kind=model", host)
        expected = location + ("?kind=model" if location != "/" else "")
        assert status == 303, target
        assert headers["location"] in (expected, location), target
        assert not headers["location"].startswith("//")

    for i in range(10):
        assert httpx.get(f"{server.url}/api/status?token=guess{i}").status_code == 401
    limited = httpx.get(f"{server.url}/api/status?token={token}")
    assert limited.status_code == 429 and limited.json()["error"] == "too_many_attempts"
    assert 1 <= int(limited.headers["retry-after"]) <= 30
    assert httpx.get(server.url + "/healthz").status_code == 200


def test_no_data_folder_and_no_token_refuses_to_start_on_a_public_address(
    tmp_path: Path, postgres_url: str
) -> None:
    env = {**_env(tmp_path), "HOOKWATCH_DATABASE_URL": postgres_url,
           "HOOKWATCH_AUTO_MIGRATE": "true"}
    done = subprocess.run(
        [sys.executable, "-m", "hookwatch", "serve", "--host", "0.0.0.0", "--port", "1"],
        env={**os.environ, **env}, cwd=tmp_path, capture_output=True,
        text=True, timeout=60,
    )
    assert done.returncode == 1
    assert "HOOKWATCH_DASHBOARD_TOKEN" in done.stderr and "HOOKWATCH_DATA_DIR" in done.stderr
