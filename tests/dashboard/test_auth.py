"""Private mode and the guard, in process: tokens and roles, the sign-in form, the Host check,
where a change may come from, the redirect after sign-in, and the sign-in rate limit.

The same checks over the wire, against a real `hookwatch serve`, are in test_access_serve.py;
in a real browser on another origin, in test_cross_site.py.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable, Iterator

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from sqlmodel import Session, select

from hookwatch.dashboard.auth import COOKIE, Gate, RedactToken, safe_next
from hookwatch.dashboard.policy import Access
from hookwatch.dashboard.ratelimit import SignInLimiter
from hookwatch.storage.tables import Alert, Silence
from tests.conftest import ManualClock
from tests.dashboard import helpers

TOKEN = "dash-t0ken-for-tests"
VIEWER = "wall-screen-t0ken"
PRIVATE = ["/", "/parts/live", "/parts/scopes", "/api/status", "/api/alerts",
           "/api/predictions", "/badge/model/acme/sdxl.svg", "/predictions/p1", "/metrics",
           "/docs", "/openapi.json"]
HTML = {"accept": "text/html,application/xhtml+xml"}
ADMIN = {"authorization": f"Bearer {TOKEN}"}


@pytest.fixture
def private(dash_app: Callable[..., FastAPI], clock: ManualClock) -> Iterator[TestClient]:
    with TestClient(dash_app(dashboard_token=TOKEN, viewer_token=VIEWER)) as client:
        helpers.send(client, clock, helpers.body("succeeded", at=clock.now, prediction_id="p1"))
        yield client


def _firing(app: FastAPI, client: TestClient, clock: ManualClock) -> int:
    for i in range(6):
        clock.advance(10)
        helpers.send(client, clock, helpers.body("failed", at=clock.now, error=f"e{i}"))
    app.state.jobs.run_now("evaluate")
    with Session(app.state.runtime.engine) as session:
        alert = session.exec(select(Alert).where(Alert.state == "firing")).one()
        assert alert.id is not None
        return alert.id


def _acked(app: FastAPI, alert_id: int) -> str | None:
    with Session(app.state.runtime.engine) as session:
        alert = session.get(Alert, alert_id)
        assert alert is not None
        return alert.acked_by


def test_everything_but_the_open_paths_needs_the_token(private: TestClient) -> None:
    for path in PRIVATE:
        answer = private.get(path)
        assert answer.status_code == 401, path
        assert answer.json()["error"] == "unauthorized", path
        assert answer.headers["www-authenticate"].startswith("Bearer")
        assert "acme/sdxl" not in answer.text
        assert private.get(path, headers=ADMIN).status_code == 200, path
        assert private.get(path, headers={"authorization": f"Bearer {VIEWER}"}
                           ).status_code == 200, path
    assert private.get("/", headers={"authorization": "Bearer wrong"}).status_code == 401
    assert private.post("/alerts/1/ack", data={"by": "x"}).status_code == 401
    for path in ("/healthz", "/readyz", "/static/htmx.min.js", "/static/dashboard.css"):
        assert private.get(path).status_code == 200, path
    hook = private.post("/hooks/replicate", content=b"{}")
    assert hook.status_code == 401  # its own authentication, not the dashboard's
    assert hook.json()["error"] == "missing_credentials"


def test_a_browser_gets_a_sign_in_page_then_a_cookie(private: TestClient) -> None:
    page = private.get("/", headers=HTML)
    assert page.status_code == 401 and "This dashboard is private" in page.text
    assert 'action="/auth"' in page.text and "acme/sdxl" not in page.text
    assert re.search(r'name="csrf" value="[0-9a-f]+\.[0-9a-f]{32}"', page.text)

    once = private.get(f"/?token={TOKEN}&kind=model", headers=HTML, follow_redirects=False)
    assert once.status_code == 303 and once.headers["location"] == "/?kind=model"
    cookie = once.headers["set-cookie"]
    assert "HttpOnly" in cookie and "SameSite=Lax" in cookie and TOKEN not in cookie
    assert "Secure" not in cookie  # plain http here; https adds it
    assert private.get("/", headers=HTML).status_code == 200  # the cookie now
    assert private.get("/api/status").status_code == 200

    private.cookies.clear()
    assert private.get("/api/status", params={"token": TOKEN}).status_code == 200
    assert COOKIE in private.cookies  # an API call with ?token= gets the cookie too
    private.cookies.clear()
    private.cookies.set(COOKIE, "forged")
    assert private.get("/api/status").status_code == 401


def test_the_sign_in_form_needs_its_csrf_token_and_goes_back_only_locally(
    private: TestClient,
) -> None:
    csrf = helpers.csrf(private)  # from the sign-in page
    assert private.post("/auth", data={"token": TOKEN}).json()["error"] == "csrf"
    forged = private.post("/auth", data={"token": TOKEN, "csrf": "1.abc"})
    assert forged.status_code == 403 and forged.json()["error"] == "csrf"
    assert COOKIE not in private.cookies
    wrong = private.post("/auth", data={"token": "nope", "next": "/?kind=model", "csrf": csrf})
    assert wrong.status_code == 401 and "not the one" in wrong.text
    right = private.post("/auth", data={"token": TOKEN, "next": "//evil.example/x",
                                        "csrf": csrf}, follow_redirects=False)
    assert right.status_code == 303 and right.headers["location"] == "/"
    assert private.get("/api/status").status_code == 200
    https = private.post("/auth", data={"token": TOKEN, "csrf": csrf},
                         headers={"x-forwarded-proto": "https"}, follow_redirects=False)
    assert "Secure" in https.headers["set-cookie"]


@pytest.mark.parametrize("target", [
    "https://evil.example/", "//evil.example/", "///evil.example/", "/\\evil.example/",
    "\\\\evil.example/", "/\t/evil.example/", "/\n/evil.example/", "/\r\n/evil.example",
    "/%09/evil.example/", "/%0a/evil.example/", "/%2F/evil.example/", "/%2f%2fevil.example",
    "/%5Cevil.example/", "/%252F%252Fevil.example", "/%25252F/evil.example", " /x",
    "/x y", "javascript:alert(1)", "evil.example", "", None,
])
def test_safe_next_refuses_every_way_off_site(target: str | None) -> None:
    assert safe_next(target) == "/"


def test_safe_next_keeps_our_own_paths() -> None:
    for target in ("/", "/?kind=model&q=a", "/predictions/p%2F1", "/badge/model/a/b.svg",
                   "/alerts/3#notes"):
        assert safe_next(target) == target


@pytest.mark.parametrize(("raw", "location"), [
    ("/%09/evil.example/", "/"),  # decoded to "/\t/evil.example/": quoted again, then refused
    ("//evil.example/", "/"),
    ("/%2F/evil.example/", "/"),
    ("/%5Cevil.example/", "/"),
    ("/predictions/p1", "/predictions/p1"),
])
def test_the_token_link_redirects_only_to_our_own_path(
    private: TestClient, raw: str, location: str
) -> None:
    answer = private.get(f"{raw}?token={TOKEN}", headers=HTML, follow_redirects=False)
    assert answer.status_code == 303
    assert answer.headers["location"] == location


def test_the_viewer_token_looks_but_cannot_change(
    dash_app: Callable[..., FastAPI], clock: ManualClock
) -> None:
    app = dash_app(dashboard_token=TOKEN, viewer_token=VIEWER)
    with TestClient(app) as client:
        alert_id = _firing(app, client, clock)
        viewer = {"authorization": f"Bearer {VIEWER}"}
        page = client.get("/", headers={**HTML, **viewer})
        assert page.status_code == 200 and "acme/sdxl-prod" in page.text
        assert "form class=\"ack\"" not in page.text and "Silence…" not in page.text
        refused = client.post(f"/api/alerts/{alert_id}/ack", json={"by": "wall"}, headers=viewer)
        assert refused.status_code == 403 and refused.json()["error"] == "read_only"
        silence = {"rule": "*", "scope": "*", "name": "*", "duration": "1h",
                   "created_by": "wall", "comment": "x"}
        assert client.post("/api/silences", json=silence, headers=viewer).status_code == 403
        client.get(f"/?token={VIEWER}", headers=HTML)  # a viewer cookie, on a wall screen
        form = {"by": "wall", "csrf": helpers.csrf(client)}
        assert client.post(f"/alerts/{alert_id}/ack", data=form).status_code == 403
        assert _acked(app, alert_id) is None

        admin_page = client.get("/", headers={**HTML, **ADMIN})
        assert "form class=\"ack\"" in admin_page.text
        done = client.post(f"/api/alerts/{alert_id}/ack", json={"by": "ana"}, headers=ADMIN)
        assert done.status_code == 200 and _acked(app, alert_id) == "ana"
        with Session(app.state.runtime.engine) as session:
            assert session.exec(select(Silence)).all() == []


def test_json_changes_need_the_bearer_header_not_the_cookie(
    dash_app: Callable[..., FastAPI], clock: ManualClock
) -> None:
    app = dash_app(dashboard_token=TOKEN)
    with TestClient(app) as client:
        alert_id = _firing(app, client, clock)
        client.get(f"/?token={TOKEN}", headers=HTML)
        assert COOKIE in client.cookies
        by_cookie = client.post(f"/api/alerts/{alert_id}/ack", json={"by": "eve"})
        assert by_cookie.status_code == 403 and by_cookie.json()["error"] == "bearer_required"
        assert client.delete("/api/silences/1").json()["error"] == "bearer_required"
        assert _acked(app, alert_id) is None
        client.cookies.clear()
        ok = client.post(f"/api/alerts/{alert_id}/ack", json={"by": "ana"}, headers=ADMIN)
        assert ok.status_code == 200


@pytest.mark.parametrize(("headers", "reason"), [
    ({"origin": "null"}, "Origin: null"),
    ({"origin": "https://evil.example"}, "another site"),
    ({"origin": "http://testserver.evil.example"}, "another site"),
    ({"origin": "http://testserver:8080"}, "another site"),  # same host, another port
    ({"referer": "https://evil.example/page"}, "Referer"),
    ({"sec-fetch-site": "cross-site"}, "Sec-Fetch-Site"),
    ({"sec-fetch-site": "same-site", "origin": "http://testserver"}, "Sec-Fetch-Site"),
])
def test_a_change_from_another_site_is_refused(
    dash_app: Callable[..., FastAPI], clock: ManualClock, headers: dict[str, str], reason: str
) -> None:
    app = dash_app()  # open mode: no credential at all would stop it
    with TestClient(app) as client:
        alert_id = _firing(app, client, clock)
        form = {"by": "mallory", "csrf": helpers.csrf(client)}
        answer = client.post(f"/alerts/{alert_id}/ack", data=form, headers=headers)
        assert answer.status_code == 403
        assert answer.json()["error"] == "cross_site" and reason in answer.json()["detail"]
        page = client.post(f"/alerts/{alert_id}/ack", data=form, headers={**headers, **HTML})
        assert page.status_code == 403 and "Refused" in page.text  # a page, for a form
        api = client.post(f"/api/alerts/{alert_id}/ack", json={"by": "mallory"},
                          headers=headers)
        assert api.status_code == 403
        assert _acked(app, alert_id) is None
        own = client.post(f"/alerts/{alert_id}/ack", data=form, follow_redirects=False,
                          headers={"origin": "http://testserver",
                                   "referer": "http://testserver/?kind=model"})
        assert own.status_code == 303 and _acked(app, alert_id) == "mallory"


def test_open_mode_forms_need_the_csrf_token(
    dash_app: Callable[..., FastAPI], clock: ManualClock
) -> None:
    app = dash_app()
    with TestClient(app) as client:
        alert_id = _firing(app, client, clock)
        token = helpers.csrf(client)
        tampered = token[:-1] + ("1" if token.endswith("0") else "0")  # always a change
        for form in ({"by": "x"}, {"by": "x", "csrf": ""}, {"by": "x", "csrf": "zz.00"},
                     {"by": "x", "csrf": tampered}):
            answer = client.post(f"/alerts/{alert_id}/ack", data=form)
            assert answer.status_code == 403 and answer.json()["error"] == "csrf", form
        multipart = client.post(f"/alerts/{alert_id}/ack", files={"by": (None, "x")})
        assert multipart.status_code == 403
        stale = helpers.csrf(client)
        clock.advance(25 * 3600)
        old = client.post(f"/alerts/{alert_id}/ack", data={"by": "x", "csrf": stale})
        assert old.status_code == 403 and "too old" in old.json()["detail"]
        assert _acked(app, alert_id) is None
        # The JSON API of an open dashboard is for scripts on this machine: no Origin, no CSRF.
        assert client.post(f"/api/alerts/{alert_id}/ack", json={"by": "cli"}).status_code in (
            200, 409)  # the rule may have resolved during the 25 hours


def test_a_foreign_host_is_refused_for_people_but_not_for_webhooks_or_health(
    dash_app: Callable[..., FastAPI], clock: ManualClock
) -> None:
    app = dash_app(public_url="https://hooks.example.com", dashboard_token=TOKEN)
    with TestClient(app) as client:
        client.get(f"/?token={TOKEN}", headers=HTML)  # a browser's session: a cookie
        for host in ("rebind.evil.example", "hooks.example.com.evil.example", "evil:80@x"):
            answer = client.get("/api/status", headers={"host": host})
            assert answer.status_code == 421, host
            assert answer.json()["error"] == "unknown_host"
            assert "acme" not in answer.text
        for host in ("hooks.example.com", "HOOKS.example.com:443", "localhost:8000",
                     "127.0.0.1:8000", "10.1.2.3", "[::1]:8000", "testserver"):
            assert client.get("/api/status", headers={"host": host}).status_code == 200, host
        for path in ("/healthz", "/readyz"):
            assert client.get(path, headers={"host": "lb.internal"}).status_code == 200
        assert client.get("/static/dashboard.css", headers={"host": "x.evil"}).status_code == 200
        # A script with the token in a header is no browser: any name (Prometheus' target).
        assert client.get("/metrics", headers={**ADMIN, "host": "hooks.internal"}
                          ).status_code == 200
        hook = client.post("/hooks/replicate", content=b"{}", headers={"host": "x.evil"})
        assert hook.json()["error"] == "missing_credentials"  # the webhook's own checks


def test_open_mode_refuses_what_came_through_a_proxy(dash_app: Callable[..., FastAPI]) -> None:
    with TestClient(dash_app()) as client:
        for name in ("x-forwarded-for", "forwarded", "x-real-ip"):
            answer = client.get("/api/status", headers={name: "203.0.113.9"})
            assert answer.status_code == 403 and answer.json()["error"] == "local_only"
        assert client.get("/healthz", headers={"x-forwarded-for": "203.0.113.9"}
                          ).status_code == 200
    with TestClient(dash_app(dashboard_token=TOKEN)) as client:  # with a token, fine
        assert client.get("/api/status", headers={**ADMIN, "x-forwarded-for": "203.0.113.9"}
                          ).status_code == 200


def test_public_badges_stay_public_and_nothing_else(
    dash_app: Callable[..., FastAPI], clock: ManualClock
) -> None:
    with TestClient(dash_app(dashboard_token=TOKEN, public_badges=True)) as client:
        helpers.send(client, clock, helpers.body("succeeded", at=clock.now))
        badge = client.get("/badge/model/acme/sdxl.svg", headers={"host": "camo.example"})
        assert badge.status_code == 200 and badge.headers["content-type"] == "image/svg+xml"
        assert client.get("/api/status").status_code == 401


def test_wrong_tokens_are_rate_limited_per_client(
    dash_app: Callable[..., FastAPI], clock: ManualClock
) -> None:
    with TestClient(dash_app(dashboard_token=TOKEN)) as client:
        csrf = helpers.csrf(client)
        for i in range(10):
            kind = i % 3
            if kind == 0:
                answer = client.post("/auth", data={"token": f"guess{i}", "csrf": csrf})
            elif kind == 1:
                answer = client.get("/api/status", params={"token": f"guess{i}"})
            else:
                answer = client.get("/api/status", headers={"authorization": f"Bearer g{i}"})
            assert answer.status_code == 401, i
        for attempt in (
            lambda: client.post("/auth", data={"token": TOKEN, "csrf": csrf}),
            lambda: client.get("/api/status", params={"token": TOKEN}),
            lambda: client.get("/api/status", headers=ADMIN),
        ):
            limited = attempt()  # the right token too: a hit must look like a miss
            assert limited.status_code == 429
            assert 1 <= int(limited.headers["retry-after"]) <= 30
        page = client.get("/", params={"token": TOKEN}, headers=HTML)
        assert page.status_code == 429 and "try again in" in page.text
        assert client.get("/healthz").status_code == 200
        clock.advance(30)
        assert client.get("/api/status", headers=ADMIN).status_code == 200  # one more try
        assert client.get("/api/status", params={"token": "x"}).status_code == 401
        assert client.get("/api/status", headers=ADMIN).status_code == 429


def test_the_limiter_refills_and_forgets() -> None:
    limiter = SignInLimiter(attempts=2, refill=10.0, max_clients=10)
    for _ in range(2):
        assert limiter.retry_after("a", now=0.0) == 0
        limiter.failed("a", now=0.0)
    assert limiter.retry_after("a", now=0.0) == 10 and limiter.retry_after("b", now=0) == 0
    assert limiter.retry_after("a", now=4.0) == 6 and limiter.retry_after("a", now=10.0) == 0
    for n in range(20):
        limiter.failed(f"c{n}", now=1.0 + n)
    assert len(limiter._buckets) <= 10


def test_gate_roles_one_time_code_and_log_redaction() -> None:
    gate = Gate(Access(admin_token=TOKEN, viewer_token=VIEWER, sign_in_code="once-code",
                       sign_in_until=100.0))
    assert gate.role_for_token(TOKEN, now=0) == "admin"
    assert gate.role_for_token(VIEWER, now=0) == "viewer"
    assert gate.role_for_token(TOKEN + "x", now=0) is None and not gate.role_for_token("", now=0)
    assert gate.role_for_token("once-code", now=1.0) == "admin"
    assert gate.role_for_token("once-code", now=1.0) is None  # once
    late = Gate(Access(admin_token=TOKEN, sign_in_code="c", sign_in_until=100.0))
    assert late.role_for_token("c", now=101.0) is None
    assert gate.role_for_cookie(gate.cookie_value("admin")) == "admin"
    assert gate.role_for_cookie(gate.cookie_value("viewer")) == "viewer"
    assert gate.role_for_cookie(TOKEN) is None
    assert Gate(Access(admin_token="other")).cookie_value("admin") != gate.cookie_value("admin")
    record = logging.LogRecord("uvicorn.access", logging.INFO, "", 0, '%s - "%s %s"',
                               ("127.0.0.1", "GET", f"/?kind=model&token={TOKEN}&q=a"), None)
    RedactToken().filter(record)
    assert TOKEN not in record.getMessage()
    assert record.getMessage().endswith('"GET /?kind=model&token=[redacted]&q=a"')


def test_the_open_dashboard_has_nothing_to_sign_in_to(
    dash_app: Callable[..., FastAPI],
) -> None:
    with TestClient(dash_app()) as client:
        assert client.get("/api/status").status_code == 200
        answer = client.post("/auth", data={"token": "x", "csrf": helpers.csrf(client)})
        assert answer.status_code == 404
