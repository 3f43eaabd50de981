"""Settings precedence, the start-up banner, `hookwatch secret` and `hookwatch simulate`."""

from __future__ import annotations

import asyncio
import base64
import io
import time
from pathlib import Path

import pytest
from fastapi import FastAPI
from sqlalchemy import text

from hookwatch.app import create_app
from hookwatch.cli import main
from hookwatch.config import ConfigError
from hookwatch.settings import Settings, load_settings
from hookwatch.simulate import run
from hookwatch.startup import startup_banner
from tests.conftest import SECRET, LiveServer, make_settings


def test_environment_overrides_config_file_and_arguments_override_both(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    config = tmp_path / "hookwatch.toml"
    config.write_text(
        '[server]\nport = 9100\nsignature_tolerance = 60\ndatabase_url = "sqlite:///file.db"\n'
    )
    monkeypatch.setenv("HOOKWATCH_SIGNATURE_TOLERANCE", "120")
    monkeypatch.setenv("HOOKWATCH_WEBHOOK_SECRETS", f"{SECRET} whsec_c2Vjb25k")
    settings = load_settings(config=config, port=9200)
    assert settings.port == 9200
    assert settings.signature_tolerance == 120
    assert settings.database_url == "sqlite:///file.db"
    assert [s.get_secret_value() for s in settings.webhook_secrets] == [SECRET, "whsec_c2Vjb25k"]


def test_config_file_server_table_rejects_unknown_keys(tmp_path: Path) -> None:
    config = tmp_path / "bad.toml"
    config.write_text("[server]\nprot = 1\n")
    with pytest.raises(ConfigError) as info:
        load_settings(config=config)
    assert info.value.problems == ["server.prot: unknown key (did you mean port?)"]


def test_secrets_never_print() -> None:
    settings = Settings(webhook_secrets=[SECRET], ingest_token="tok-123456")
    shown = repr(settings) + str(settings.model_dump())
    assert SECRET not in shown and "tok-123456" not in shown


def test_banner_names_urls_database_and_what_is_not_configured() -> None:
    banner = startup_banner(Settings(port=8123), rules=3, notifiers=[])
    assert "http://127.0.0.1:8123/hooks/replicate" in banner
    assert "http://127.0.0.1:8123/" in banner
    assert "sqlite:///./data/hookwatch.db" in banner
    assert "every webhook will be refused with 401" in banner
    assert "notifiers     none configured" in banner
    configured = startup_banner(
        Settings(webhook_secrets=[SECRET], database_url="postgresql+psycopg://u:pw@db/h"),
        rules=1, notifiers=["oncall"],
    )
    assert "1 secret(s) configured" in configured and "refused" not in configured
    assert "pw" not in configured and "***" in configured


def test_secret_command_prints_a_usable_whsec(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["secret"]) == 0
    secret = capsys.readouterr().out.strip()
    assert secret.startswith("whsec_")
    assert len(base64.b64decode(secret[6:])) == 32


def test_help_lists_every_command(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        main(["--help"])
    out = capsys.readouterr().out
    for command in ("serve", "demo", "simulate", "check-config", "secret", "migrate"):
        assert command in out


def real_clock_app(sqlite_url: str) -> FastAPI:
    """simulate signs with the real clock, so the app checks timestamps against it."""
    return create_app(make_settings(sqlite_url), clock=time.time, run_jobs=False)


def test_simulate_sends_signed_lifecycles_that_are_all_recorded(sqlite_url: str) -> None:
    app = real_clock_app(sqlite_url)
    out = io.StringIO()
    with LiveServer(app) as server:
        tally = asyncio.run(run(
            url=f"{server.url}/hooks/replicate", secret=SECRET, token=None, rate=60,
            duration=1.0, failure_rate=0.5, model="acme/sim", deployment="acme/sim-prod",
            seed=3, out=out,
        ))
        with app.state.runtime.engine.connect() as conn:
            events = conn.execute(text("SELECT count(*) FROM events")).scalar_one()
            outcomes = conn.execute(text(
                "SELECT sum(succeeded), sum(failed) FROM outcome_buckets "
                "WHERE resolution = 60 AND scope = 'deployment' AND name = 'acme/sim-prod'"
            )).one()
    assert tally.sent == 60 and tally.accepted == 60 and tally.refused == 0
    assert events == 60
    assert outcomes[0] + outcomes[1] == 20  # 20 lifecycles of three webhooks
    assert outcomes[1] > 0
    assert "60/60 sent, 60 accepted, 0 refused" in out.getvalue()
    assert tally.percentile(0.99) > 0


def test_simulate_counts_whole_lifecycles(sqlite_url: str) -> None:
    """50 webhooks asked for: 17 lifecycles of three, and the progress line says 51 of 51."""
    app = real_clock_app(sqlite_url)
    out = io.StringIO()
    with LiveServer(app) as server:
        tally = asyncio.run(run(
            url=f"{server.url}/hooks/replicate", secret=SECRET, token=None, rate=50,
            duration=1.0, failure_rate=0.0, model="m", deployment=None, out=out,
        ))
    assert tally.sent == 51
    assert "51/51 sent, 51 accepted" in out.getvalue()


def test_simulate_reports_refusals(sqlite_url: str) -> None:
    app = real_clock_app(sqlite_url)
    with LiveServer(app) as server:
        tally = asyncio.run(run(
            url=f"{server.url}/hooks/replicate", secret="whsec_d3Jvbmc=", token=None, rate=30,
            duration=0.2, failure_rate=0.0, model="m", deployment=None, out=io.StringIO(),
        ))
    assert tally.accepted == 0 and tally.refused == tally.sent > 0
    assert tally.errors.most_common(1)[0][0] == "401 invalid_signature"
