"""Another site tries every change in a real Chromium: a page on a second local HTTP server
(another origin: another port of 127.0.0.1, which is the same *site*, so SameSite cookies go
along; or localhost, another site) posts forms, runs fetch() and a sandboxed frame
(`Origin: null`) against hookwatch, open and signed in. Nothing may change."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, cast

import httpx
import pytest
from fastapi import FastAPI
from sqlmodel import Session, select

from hookwatch.storage.tables import Alert, Silence
from tests.conftest import LiveServer, ManualClock, free_port
from tests.dashboard import helpers

pytestmark = pytest.mark.browser
TOKEN = "dash-cross-site-t0ken"


class Attacker:
    """A local HTTP server answering GET path -> HTML from `pages`."""

    def __init__(self, host: str) -> None:
        self.pages: dict[str, str] = {}
        self.port = free_port()
        self.origin = f"http://{host}:{self.port}"
        pages = self.pages

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                body = pages.get(self.path.split("?")[0], "not found").encode()
                self.send_response(200 if self.path in pages else 404)
                self.send_header("content-type", "text/html; charset=utf-8")
                self.send_header("content-length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *_args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self) -> Attacker:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()


class Recorder:
    """The app as served, recording (method, path, Origin, status) of every request it answers."""

    def __init__(self, app: FastAPI) -> None:
        self.app = app
        self.seen: list[tuple[str, str, str | None, int]] = []

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        origin = dict(scope["headers"]).get(b"origin")

        async def record(message: Any) -> None:
            if message["type"] == "http.response.start":
                self.seen.append((scope["method"], scope["path"],
                                  origin.decode() if origin else None, message["status"]))
            await send(message)

        await self.app(scope, receive, record)

    def changes(self) -> list[tuple[str, str, str | None, int]]:
        return [s for s in self.seen if s[0] not in ("GET", "HEAD", "OPTIONS")]


def _form(action: str, fields: dict[str, str]) -> str:
    inputs = "".join(f'<input name="{k}" value="{v}">' for k, v in fields.items())
    return f'<form method="post" action="{action}">{inputs}<button>go</button></form>'


def _state(app: FastAPI) -> tuple[list[str | None], list[tuple[str, float]]]:
    with Session(app.state.runtime.engine) as session:
        acks = [a.acked_by for a in session.exec(select(Alert)).all()]
        silences = [(s.created_by, s.ends_at) for s in session.exec(select(Silence)).all()]
    return acks, silences


@pytest.fixture
def context(chromium: Any) -> Iterator[Any]:
    ctx = chromium.new_context()
    ctx.set_default_timeout(10_000)
    yield ctx
    ctx.close()


@pytest.mark.parametrize(("mode", "attacker_host"), [
    ("open", "localhost"), ("open", "127.0.0.1"), ("private", "127.0.0.1"),
])
def test_another_site_cannot_acknowledge_silence_expire_or_sign_in(
    dash_app: Callable[..., FastAPI], clock: ManualClock, context: Any,
    mode: str, attacker_host: str,
) -> None:
    app = dash_app(**({"dashboard_token": TOKEN, "viewer_token": "wall-t0ken-x"}
                      if mode == "private" else {}))
    admin = {"authorization": f"Bearer {TOKEN}"} if mode == "private" else {}
    recorder = Recorder(app)
    with LiveServer(cast(FastAPI, recorder)) as server, Attacker(attacker_host) as evil:
        for i in range(6):
            clock.advance(10)
            helpers.send(server.url, clock, helpers.body("failed", at=clock.now, error=f"e{i}"))
        app.state.jobs.run_now("evaluate")
        with Session(app.state.runtime.engine) as session:
            alert_id = session.exec(select(Alert.id).where(Alert.state == "firing")).first()
        kept = httpx.post(f"{server.url}/api/silences", headers=admin, json={
            "rule": "other-rule", "scope": "*", "name": "*", "duration": "4h",
            "created_by": "ops", "comment": "maintenance"})
        assert kept.status_code == 201, kept.text
        silence_id = kept.json()["id"]
        before = _state(app)

        page = context.new_page()
        recorder.seen.clear()
        if mode == "private":  # the victim is signed in: the cookie is in the browser
            page.goto(f"{server.url}/?token={TOKEN}")
            assert page.locator("form.ack").count() >= 1

        h = server.url
        guess = "65f0b1a0.00000000000000000000000000000000"
        evil.pages.update({
            "/ack": _form(f"{h}/alerts/{alert_id}/ack", {"by": "mallory", "csrf": guess}),
            "/silence": _form(f"{h}/alerts/{alert_id}/silence",
                              {"by": "mallory", "comment": "x", "duration": "7d"}),
            "/api-silence": _form(f"{h}/api/silences", {"rule": "*"}),
            "/sign-in": _form(f"{h}/auth", {"token": "wall-t0ken-x", "next": "/"}),
            "/sandboxed": '<iframe sandbox="allow-forms allow-scripts" srcdoc="'
                          + _form(f"{h}/alerts/{alert_id}/ack", {"by": "mallory"}).replace(
                              '"', "&quot;")
                          + '&lt;script&gt;document.forms[0].submit()&lt;/script&gt;"></iframe>',
            "/blank": "<p>nothing here</p>",
        })
        for path in ("/ack", "/silence", "/api-silence", "/sign-in"):
            page.goto(evil.origin + path)
            with page.expect_navigation() as navigation:
                page.click("button")
            assert page.url.startswith(h)
            status = navigation.value.status
            assert status == 403, (path, status)
            assert "Refused" in page.content() and "another site" in page.content()

        page.goto(evil.origin + "/sandboxed")  # the frame posts at once, with Origin: null
        deadline = time.monotonic() + 10
        while len(recorder.changes()) < 5 and time.monotonic() < deadline:
            time.sleep(0.05)
        assert recorder.changes()[-1] == ("POST", f"/alerts/{alert_id}/ack", "null", 403)

        page.goto(evil.origin + "/blank")
        results = page.evaluate("""async ([h, id, sid]) => {
            const tries = [
              [`${h}/api/alerts/${id}/ack`, {method: 'POST', mode: 'no-cors',
                credentials: 'include', headers: {'content-type': 'text/plain'},
                body: JSON.stringify({by: 'mallory'})}],
              [`${h}/api/silences`, {method: 'POST', mode: 'no-cors', credentials: 'include',
                headers: {'content-type': 'text/plain'}, body: JSON.stringify({rule: '*',
                scope: '*', name: '*', duration: '7d', created_by: 'mallory', comment: 'x'})}],
              [`${h}/alerts/${id}/ack`, {method: 'POST', mode: 'no-cors', credentials: 'include',
                body: new URLSearchParams({by: 'mallory'})}],
              [`${h}/alerts/${id}/silence`, {method: 'POST', mode: 'no-cors',
                credentials: 'include', body: new URLSearchParams({by: 'mallory',
                comment: 'x', duration: '7d'})}],
              [`${h}/auth`, {method: 'POST', mode: 'no-cors', credentials: 'include',
                body: new URLSearchParams({token: 'wall-t0ken-x'})}],
              [`${h}/api/silences/${sid}?by=mallory`, {method: 'DELETE',
                credentials: 'include'}],
              [`${h}/api/alerts/${id}/ack`, {method: 'POST', credentials: 'include',
                headers: {'content-type': 'application/json'},
                body: JSON.stringify({by: 'mallory'})}],
            ];
            const out = [];
            for (const [url, init] of tries) {
              try { const r = await fetch(url, init); out.push(r.type + ':' + r.status); }
              catch (e) { out.push('blocked'); }
            }
            return out;
        }""", [h, alert_id, silence_id])
        assert len(results) == 7
        # The no-cors posts reach hookwatch (opaque answers); the DELETE and the JSON post
        # need a CORS preflight, which hookwatch never grants.
        assert results[:5] == ["opaque:0"] * 5 and results[5:] == ["blocked", "blocked"]

        assert _state(app) == before  # nothing acknowledged, silenced or expired
        refused = recorder.changes()
        # Four forms, the sandboxed frame's and five fetches reached hookwatch, each refused,
        # each with its page's origin (the preflighted two never left the browser).
        assert len(refused) == 10, refused
        assert [code for *_rest, code in refused] == [403] * 10, refused
        assert {origin for _m, _p, origin, _c in refused} == {evil.origin, "null"}
        if mode == "private":
            (cookie,) = context.cookies()  # the attacker's sign-in set no other cookie
            assert cookie["value"] == app.state.runtime.dashboard.gate.cookie_value(
                "admin")

        # The same browser on hookwatch's own page can do all of it: the refusals were not luck.
        page.goto(server.url + "/")
        card = page.locator("article.alert.state-firing").first
        card.locator("form.ack input[name=csrf]").evaluate("e => e.value = 'tampered.00'")
        card.locator("form.ack input[name=by]").fill("alice")
        card.get_by_role("button", name="Acknowledge").click()
        page.locator("#flash", has_text="CSRF token is not this hookwatch's").wait_for()
        assert _state(app) == before
        page.reload()
        card.locator("form.ack input[name=by]").fill("alice")
        card.get_by_role("button", name="Acknowledge").click()
        page.locator("#flash", has_text="acknowledged by alice").wait_for()
        assert "alice" in _state(app)[0]
