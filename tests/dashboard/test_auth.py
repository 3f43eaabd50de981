"""Private mode: the dashboard token by bearer header, ?token= once, or the cookie it leaves."""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from hookwatch.dashboard.auth import COOKIE, Gate, RedactToken, safe_next
from tests.conftest import ManualClock
from tests.dashboard import helpers

TOKEN = "dash-t0ken-for-tests"
PRIVATE = ["/", "/parts/live", "/parts/scopes", "/api/status", "/api/alerts",
           "/api/predictions", "/badge/model/acme/sdxl.svg", "/predictions/p1", "/metrics",
           "/docs", "/openapi.json"]


@pytest.fixture
def private(dash_app: Callable[..., FastAPI], clock: ManualClock) -> Iterator[TestClient]:
    with TestClient(dash_app(dashboard_token=TOKEN)) as client:
        helpers.send(client, clock, helpers.body("succeeded", at=clock.now, prediction_id="p1"))
        yield client


def test_everything_but_the_open_paths_needs_the_token(private: TestClient) -> None:
    for path in PRIVATE:
        answer = private.get(path)
        assert answer.status_code == 401, path
        assert answer.json()["error"] == "unauthorized", path
        assert answer.headers["www-authenticate"].startswith("Bearer")
        assert "acme/sdxl" not in answer.text
        assert private.get(path, headers={"authorization": f"Bearer {TOKEN}"}
                           ).status_code == 200, path
    assert private.get("/", headers={"authorization": "Bearer wrong"}).status_code == 401
    assert private.post("/alerts/1/ack", data={"by": "x"}).status_code == 401
    for path in ("/healthz", "/readyz", "/static/htmx.min.js", "/static/dashboard.css"):
        assert private.get(path).status_code == 200, path
    hook = private.post("/hooks/replicate", content=b"{}")
    assert hook.status_code == 401  # its own authentication, not the dashboard's
    assert hook.json()["error"] == "missing_credentials"


def test_a_browser_gets_a_sign_in_page_then_a_cookie(private: TestClient) -> None:
    html = {"accept": "text/html,application/xhtml+xml"}
    page = private.get("/", headers=html)
    assert page.status_code == 401 and "This dashboard is private" in page.text
    assert 'action="/auth"' in page.text and "acme/sdxl" not in page.text

    once = private.get(f"/?token={TOKEN}&kind=model", headers=html, follow_redirects=False)
    assert once.status_code == 303 and once.headers["location"] == "/?kind=model"
    cookie = once.headers["set-cookie"]
    assert "HttpOnly" in cookie and "SameSite=Lax" in cookie and TOKEN not in cookie
    assert "Secure" not in cookie  # plain http here; https adds it
    assert private.get("/", headers=html).status_code == 200  # the cookie now
    assert private.get("/api/status").status_code == 200

    private.cookies.clear()
    assert private.get("/api/status", params={"token": TOKEN}).status_code == 200
    assert COOKIE in private.cookies  # an API call with ?token= gets the cookie too
    private.cookies.clear()
    private.cookies.set(COOKIE, "forged")
    assert private.get("/api/status").status_code == 401


def test_the_sign_in_form_sets_the_cookie_and_goes_back_only_locally(
    private: TestClient,
) -> None:
    wrong = private.post("/auth", data={"token": "nope", "next": "/?kind=model"})
    assert wrong.status_code == 401 and "not the one" in wrong.text
    right = private.post("/auth", data={"token": TOKEN, "next": "//evil.example/x"},
                         follow_redirects=False)
    assert right.status_code == 303 and right.headers["location"] == "/"
    assert private.get("/api/status").status_code == 200
    https = private.post("/auth", data={"token": TOKEN},
                         headers={"x-forwarded-proto": "https"}, follow_redirects=False)
    assert "Secure" in https.headers["set-cookie"]
    assert [safe_next(t) for t in ("/x?y=1", "https://e.x", "//e.x", "/\\e.x", "", None)] == [
        "/x?y=1", "/", "/", "/", "/", "/"]


def test_the_open_dashboard_has_nothing_to_sign_in_to(
    dash_app: Callable[..., FastAPI],
) -> None:
    with TestClient(dash_app()) as client:
        assert client.get("/api/status").status_code == 200
        assert client.post("/auth", data={"token": "x"}).status_code == 404


def test_gate_and_log_redaction() -> None:
    gate = Gate(TOKEN)
    assert gate.token_ok(TOKEN) and not gate.token_ok(TOKEN + "x") and not gate.token_ok("")
    assert gate.cookie_ok(gate.cookie_value) and not gate.cookie_ok(TOKEN)
    assert Gate("other").cookie_value != gate.cookie_value
    record = logging.LogRecord("uvicorn.access", logging.INFO, "", 0, '%s - "%s %s"',
                               ("127.0.0.1", "GET", f"/?kind=model&token={TOKEN}&q=a"), None)
    RedactToken().filter(record)
    assert TOKEN not in record.getMessage()
    assert record.getMessage().endswith('"GET /?kind=model&token=[redacted]&q=a"')
