"""The server-rendered page and its parts, the prediction page, the acknowledge and silence forms."""

from __future__ import annotations

import re
from collections.abc import Callable
from fnmatch import fnmatchcase

import orjson
from fastapi import FastAPI
from fastapi.testclient import TestClient
from sqlmodel import Session, select

from hookwatch.storage.tables import Alert, Silence
from tests.conftest import ManualClock
from tests.dashboard import helpers

HX = {"hx-request": "true"}


def _names(html: str) -> list[str]:
    return re.findall(r'<tr class="row" data-scope="[a-z]+" data-name="([^"]*)"', html)


def _scopes(client: TestClient, clock: ManualClock) -> None:
    for model, failed in (("acme/a", 0), ("acme/b", 3), ("zeta/c", 1)):
        for i in range(4):
            helpers.send(client, clock, helpers.body(
                "failed" if i < failed else "succeeded", at=clock.now, model=model,
                deployment=None, version="v1", error="boom" if i < failed else None))


def test_page_groups_filters_and_sorts_on_the_server(
    dash_app: Callable[..., FastAPI], clock: ManualClock
) -> None:
    with TestClient(dash_app()) as client:
        page = client.get("/")
        assert page.status_code == 200 and "No prediction has finished yet" in page.text
        assert "script-src 'self';" in page.headers["content-security-policy"]
        assert page.headers["cache-control"] == "no-store"
        _scopes(client, clock)
        page = client.get("/").text
        assert re.findall(r'<tr class="group"><th colspan="12">(\w+) · (\d+)', page) == [
            ("models", "3"), ("versions", "3")]
        assert _names(page)[:3] == ["acme/b", "zeta/c", "acme/a"]  # worst 1h rate first
        assert 'hx-trigger="every 10s"' in page and '<script src="/static/htmx.min.js"' in page
        assert _names(client.get("/?sort=name").text)[:3] == ["acme/a", "acme/b", "zeta/c"]
        assert _names(client.get("/?sort=name&dir=desc").text)[:3] == [
            "zeta/c", "acme/b", "acme/a"]
        assert _names(client.get("/?sort=rate1h&dir=asc").text)[:3] == [
            "acme/a", "zeta/c", "acme/b"]
        assert _names(client.get("/?q=ZETA&kind=model").text) == ["zeta/c"]
        assert _names(client.get("/?kind=version").text) == [
            "acme/b:v1", "zeta/c:v1", "acme/a:v1"]
        assert "No scope matches" in client.get("/?q=nothing-like-this").text
        assert 'every 0.5s' in client.get("/?refresh=0.5").text
        bad = client.get("/?refresh=0")
        assert bad.status_code == 422 and bad.json()["error"] == "invalid_request"
        # Unknown filter values fall back instead of failing.
        assert len(_names(client.get("/?sort=bogus&kind=bogus&status=bogus").text)) == 6


def test_parts_swap_in_by_id_and_keep_the_filter(
    dash_app: Callable[..., FastAPI], clock: ManualClock
) -> None:
    with TestClient(dash_app()) as client:
        _scopes(client, clock)
        live = client.get("/parts/live", params={"q": "acme/b"}).text
        ids = re.findall(r'id="([\w-]+)"[^>]*hx-swap-oob="true"', live)
        assert ids == ["updated", "headline", "notifiers", "alerts", "scope-table", "failures"]
        assert _names(live) == ["acme/b", "acme/b:v1"]
        assert "<html" not in live
        table = client.get("/parts/scopes", params={"status": "no data"}).text
        assert table.startswith('<div id="scope-table">') and _names(table) == []


def test_prediction_page_shows_timeline_error_and_log_tail_not_payloads(
    dash_app: Callable[..., FastAPI], clock: ManualClock
) -> None:
    logs = "".join(f"step {i}\n" for i in range(1, 400))
    secret_input = {"prompt": "my private photo", "image": "https://example.com/me.png"}
    with TestClient(dash_app()) as client:
        for status in ("starting", "processing", "failed"):
            clock.advance(2)
            helpers.send(client, clock, helpers.body(
                status, at=clock.now, prediction_id="p1", logs=logs,
                error="CUDA out of memory" if status == "failed" else None,
                payload=secret_input))
        page = client.get("/predictions/p1").text
        assert page.count('<span class="pill st-') == 4  # the state and three events
        assert re.findall(r'<span class="pill st-\w+">(\w+)</span></td>', page) == [
            "starting", "processing", "failed"]
        assert '<pre class="error-text" id="error">CUDA out of memory</pre>' in page
        tail = re.search(r'<pre id="logs">(.*?)</pre>', page, re.S)
        assert tail is not None
        assert tail.group(1).splitlines() == [f"step {i}" for i in range(200, 400)]
        assert "last 200 lines" in page
        assert "my private photo" not in page and 'id="payloads-hidden"' in page
        missing = client.get("/predictions/nope")
        assert missing.status_code == 404 and missing.json()["error"] == "not_found"
        browsed = client.get("/predictions/nope", headers={"accept": "text/html"})
        assert browsed.status_code == 404 and "<h1>Not found</h1>" in browsed.text
        assert "no prediction with id &#39;nope&#39; has been recorded" in browsed.text

    with TestClient(dash_app(show_payloads=True)) as client:
        page = client.get("/predictions/p1").text
        assert "my private photo" in page and "replicate.delivery" not in page  # failed: none
        assert re.search(r'<pre id="input">\{\n  &#34;prompt&#34;', page)


def test_prediction_page_reads_logs_from_the_events_and_a_failure_keeps_its_own(
    dash_app: Callable[..., FastAPI], clock: ManualClock
) -> None:
    """A succeeded prediction's logs are shown from its stored webhook (the row keeps none);
    once raw events are pruned, a failed prediction still shows its logs, a succeeded one says
    why it has none."""
    app = dash_app()
    with TestClient(app) as client:
        for pid, status in (("ok1", "succeeded"), ("bad1", "failed")):
            for step, state in enumerate(("processing", status), start=1):
                clock.advance(2)
                helpers.send(client, clock, helpers.body(
                    state, at=clock.now, prediction_id=pid,
                    logs="".join(f"{pid} step {i}\n" for i in range(1, step + 1)),
                    error="CUDA out of memory" if state == "failed" else None))

        def logs(pid: str) -> str | None:
            found = re.search(r'<pre id="logs">(.*?)</pre>', client.get(f"/predictions/{pid}").text,
                              re.S)
            return found.group(1) if found else None

        assert logs("ok1") == "ok1 step 1\nok1 step 2"
        assert logs("bad1") == "bad1 step 1\nbad1 step 2"
        with app.state.runtime.engine.begin() as conn:  # what storage.prune does, at once
            conn.exec_driver_sql("DELETE FROM events")
        assert logs("bad1") == "bad1 step 1\nbad1 step 2"
        assert logs("ok1") is None
        assert "No logs kept" in client.get("/predictions/ok1").text


def _firing(app: FastAPI, client: TestClient, clock: ManualClock) -> int:
    for i in range(6):
        clock.advance(10)
        helpers.send(client, clock, helpers.body("failed", at=clock.now, error=f"e{i}"))
    app.state.jobs.run_now("evaluate")
    with Session(app.state.runtime.engine) as session:
        alert = session.exec(select(Alert).where(Alert.state == "firing")).one()
        assert alert.id is not None
        return alert.id


def test_acknowledge_form_answers_with_the_refreshed_parts(
    dash_app: Callable[..., FastAPI], clock: ManualClock
) -> None:
    app = dash_app()
    with TestClient(app) as client:
        alert_id = _firing(app, client, clock)
        form = {"by": "bob", "comment": "looking", "q": "sdxl-prod", "csrf": helpers.csrf(client)}
        answer = client.post(f"/alerts/{alert_id}/ack", data=form, headers=HX)
        assert answer.status_code == 200
        assert 'id="flash"' in answer.text and f"Alert {alert_id} acknowledged by bob" in answer.text
        assert "acknowledged by bob" in answer.text and "“looking”" in answer.text
        assert _names(answer.text) == ["acme/sdxl-prod"]  # the page's filter came along
        again = client.post(f"/alerts/{alert_id}/ack", data=form, headers=HX)
        assert again.status_code == 200 and "was acknowledged by bob" in again.text
        plain = client.post(f"/alerts/{alert_id}/ack", data=form, follow_redirects=False)
        assert plain.status_code == 409 and plain.json()["error"] == "refused"
        assert client.post("/alerts/999/ack", data=form).status_code == 404
        assert client.post(f"/alerts/{alert_id}/ack",
                           data={"by": "", "csrf": form["csrf"]}).status_code == 422
        foreign = client.post(f"/alerts/{alert_id}/ack", data=form,
                              headers={"origin": "https://evil.example"})
        assert foreign.status_code == 403 and foreign.json()["error"] == "cross_site"
        by_referer = client.post(f"/alerts/{alert_id}/ack", data=form,
                                 headers={"referer": "https://evil.example/page"})
        assert by_referer.status_code == 403 and by_referer.json()["error"] == "cross_site"


def test_forms_work_behind_a_proxy_that_rewrites_host(
    dash_app: Callable[..., FastAPI], clock: ManualClock
) -> None:
    """The browser's Origin is the public URL; the Host the app sees is the upstream address
    the proxy used. The guard compares Origin with HOOKWATCH_PUBLIC_URL, so the form works,
    and a form from another site is still refused."""
    public = "https://hookwatch.example.com"
    app = dash_app(public_url=public, dashboard_token="d" * 32)
    with TestClient(app, base_url="http://127.0.0.1:8000") as client:
        signed_in = client.get("/?token=" + "d" * 32, headers={"accept": "text/html"},
                               follow_redirects=False)
        assert signed_in.status_code == 303
        alert_id = _firing(app, client, clock)
        proxied = {"origin": public, "x-forwarded-for": "203.0.113.9", **HX}
        form = {"by": "erin", "comment": "", "csrf": helpers.csrf(client)}
        evil = client.post(f"/alerts/{alert_id}/ack", data=form,
                           headers=proxied | {"origin": "https://evil.example"})
        assert evil.status_code == 403 and evil.json()["error"] == "cross_site"
        answer = client.post(f"/alerts/{alert_id}/ack", data=form, headers=proxied)
        assert answer.status_code == 200, answer.text
        assert f"Alert {alert_id} acknowledged by erin" in answer.text


def test_silence_form_silences_this_alert_for_a_while_with_a_reason(
    dash_app: Callable[..., FastAPI], clock: ManualClock
) -> None:
    app = dash_app()
    with TestClient(app) as client:
        alert_id = _firing(app, client, clock)
        form = {"by": "carol", "comment": "deploying a fix", "duration": "4h",
                "csrf": helpers.csrf(client)}
        answer = client.post(f"/alerts/{alert_id}/silence", data=form, follow_redirects=False)
        assert answer.status_code == 303 and answer.headers["location"] == "/"
        with Session(app.state.runtime.engine) as session:
            silence = session.exec(select(Silence)).one()
        assert (silence.rule, silence.scope, silence.name) == (
            "deployment-error-rate", "deployment", "acme/sdxl-prod")
        assert silence.ends_at - silence.starts_at == 4 * 3600
        assert (silence.created_by, silence.comment) == ("carol", "deploying a fix")
        page = client.get("/").text
        assert "silenced by carol until" in page and "“deploying a fix”" in page
        assert re.search(r'data-name="acme/sdxl-prod"><td[^>]*>[^<]*</td><td><span class="pill '
                         r'st-silenced">silenced', page)
        bad = client.post(f"/alerts/{alert_id}/silence", data=form | {"duration": "99y"})
        assert bad.status_code == 422
        assert client.post(f"/alerts/{alert_id}/silence",
                           data=form | {"comment": ""}).status_code == 422


def test_silence_of_a_name_with_glob_characters_matches_only_itself(
    dash_app: Callable[..., FastAPI], clock: ManualClock
) -> None:
    app = dash_app()
    with TestClient(app) as client:
        for i in range(6):
            clock.advance(10)
            helpers.send(client, clock, helpers.body(
                "failed", at=clock.now, deployment="acme/[prod]*", error=f"e{i}"))
        app.state.jobs.run_now("evaluate")
        with Session(app.state.runtime.engine) as session:
            alert = session.exec(select(Alert).where(Alert.scope == "deployment")).one()
        form = {"by": "dan", "comment": "known", "duration": "1h", "csrf": helpers.csrf(client)}
        assert client.post(f"/alerts/{alert.id}/silence", data=form, headers=HX).status_code == 200
        silences = orjson.loads(client.get("/api/silences").content)["silences"]
        assert [s["name"] for s in silences] == ["acme/[[]prod][*]"]  # glob.escape'd
        assert fnmatchcase("acme/[prod]*", silences[0]["name"])
        assert not fnmatchcase("acme/p", silences[0]["name"])
        assert not fnmatchcase("acme/[prod]-canary", silences[0]["name"])
        assert "silenced by dan" in client.get("/").text
