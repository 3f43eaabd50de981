"""`hookwatch test-notify NAME`: one test message through a configured notifier, and its outcome."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from hookwatch.cli import main
from tests.notifiers.helpers import (
    DISCORD_PATH,
    HOOK_SECRET,
    NTFY_TOKEN,
    NTFY_TOPIC,
    ROUTING_KEY,
    TEAMS_PATH,
    TEAMS_SIG,
    TELEGRAM_TOKEN,
    Answer,
    Receiver,
    Request,
    discord_answer,
    pagerduty_answer,
    telegram_answer,
)


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    with Receiver(answer=pagerduty_answer) as server:
        yield server


@pytest.fixture
def config(tmp_path: Path, receiver: Receiver, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("PD_KEY", ROUTING_KEY)
    monkeypatch.delenv("HOOKWATCH_CONFIG", raising=False)
    path = tmp_path / "hookwatch.toml"
    path.write_text(f"""
[server]
public_url = "https://hooks.example.com"

[notifiers.oncall]
type = "pagerduty"
routing_key = "${{PD_KEY}}"
events_url = "{receiver.url}/v2/enqueue"

[notifiers.hook]
type = "webhook"
url = "{receiver.url}/alerts?token=qu3ryT0ken"
secret = "{HOOK_SECRET}"
""")
    return path


def run(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str]:
    code = main(["test-notify", *args])
    out = capsys.readouterr()
    text = out.out + out.err
    assert ROUTING_KEY not in text and "qu3ryT0ken" not in text
    return code, text


def test_ok(config: Path, receiver: Receiver, capsys: pytest.CaptureFixture[str]) -> None:
    code, text = run(capsys, "oncall", "--config", str(config))
    assert code == 0
    assert text.startswith("'oncall' (pagerduty): OK, test notification sent in ")
    trigger, resolve = (r.json() for r in receiver.requests)
    assert trigger["payload"]["summary"].startswith("[TEST] Test notification from hookwatch")
    assert trigger["payload"]["severity"] == "info"
    assert trigger["links"][0]["href"] == "https://hooks.example.com/"
    assert resolve["event_action"] == "resolve"


def test_temporary_and_permanent_errors(config: Path, receiver: Receiver,
                                        capsys: pytest.CaptureFixture[str]) -> None:
    receiver.fail(1, 503, body=b"busy")
    code, text = run(capsys, "hook", "--config", str(config))
    assert code == 1
    assert text.strip() == ("'hook' (webhook): temporary error (a retry may help) [HTTP 503]: "
                            "127.0.0.1 answered HTTP 503: busy")
    receiver.fail(1, 401, body=b"who are you")
    code, text = run(capsys, "hook", "--config", str(config))
    assert code == 1
    assert "'hook' (webhook): permanent error [HTTP 401]: 127.0.0.1 answered HTTP 401" in text


def test_unknown_name_and_bad_config(config: Path, tmp_path: Path,
                                     capsys: pytest.CaptureFixture[str]) -> None:
    code, text = run(capsys, "pager", "--config", str(config))
    assert code == 2
    assert "no notifier named 'pager'" in text and "configured: hook, oncall" in text
    bad = tmp_path / "bad.toml"
    bad.write_text('[notifiers.x]\ntype = "pagerduty"\nrouting_key = "nope"\n')
    code, text = run(capsys, "x", "--config", str(bad))
    assert code == 2
    assert "config: notifiers.x.routing_key: must be the 32-character" in text


def channels_answer(request: Request) -> Answer:
    """One local server standing in for Discord, Teams, Telegram and ntfy, by path."""
    if request.path.startswith("/api/webhooks/"):
        return discord_answer(request)
    if request.path.startswith("/bot"):
        return telegram_answer(request)
    if request.path.startswith("/powerautomate/"):
        return 202, {}, b""
    return 200, {"content-type": "application/json"}, b'{"id":"n1","event":"message"}'


@pytest.mark.parametrize(("name", "kind", "path", "status"), [
    ("chat", "discord", DISCORD_PATH + "?wait=true", 200),
    ("room", "teams", TEAMS_PATH, 202),
    ("tg", "telegram", f"/bot{TELEGRAM_TOKEN}/sendMessage", 200),
    ("phone", "ntfy", NTFY_TOPIC, 200),
])
def test_each_new_channel(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                          monkeypatch: pytest.MonkeyPatch,
                          name: str, kind: str, path: str, status: int) -> None:
    monkeypatch.delenv("HOOKWATCH_CONFIG", raising=False)
    with Receiver(answer=channels_answer) as server:
        config = tmp_path / "hookwatch.toml"
        config.write_text(f"""
[server]
public_url = "https://hooks.example.com"

[notifiers.chat]
type = "discord"
webhook_url = "{server.url}{DISCORD_PATH}"

[notifiers.room]
type = "teams"
webhook_url = "{server.url}{TEAMS_PATH}"

[notifiers.tg]
type = "telegram"
bot_token = "{TELEGRAM_TOKEN}"
chat_id = "-1001234567890"
api_url = "{server.url}"

[notifiers.phone]
type = "ntfy"
url = "{server.url}{NTFY_TOPIC}"
token = "{NTFY_TOKEN}"
""")
        code = main(["test-notify", name, "--config", str(config)])
        (request,) = server.requests
    out = capsys.readouterr()
    text = out.out + out.err
    assert code == 0, text
    assert text.startswith(f"'{name}' ({kind}): OK, test notification sent in ")
    assert text.rstrip().endswith(f"ms, HTTP {status}")
    assert request.path == path
    assert b"Test notification from hookwatch" in request.body
    for secret in (DISCORD_PATH, TEAMS_SIG, TELEGRAM_TOKEN, NTFY_TOKEN):
        assert secret not in text


def test_links_follow_the_public_url_or_say_they_point_at_loopback(
    config: Path, receiver: Receiver, capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("HOOKWATCH_PUBLIC_URL", raising=False)
    monkeypatch.setenv("HOOKWATCH_PORT", "9123")
    config.write_text(config.read_text().replace('public_url = "https://hooks.example.com"', ""))
    code, text = run(capsys, "oncall", "--config", str(config))
    assert code == 0
    assert ("note: the message's links point at http://127.0.0.1:9123/ (this machine's "
            "loopback) because HOOKWATCH_PUBLIC_URL is unset") in text
    assert receiver.requests[0].json()["links"][0]["href"] == "http://127.0.0.1:9123/"

    code, text = run(capsys, "oncall", "--config", str(config),
                     "--public-url", "https://watch.example.org")
    assert code == 0 and "note:" not in text
    assert receiver.requests[2].json()["links"][0]["href"] == "https://watch.example.org/"
