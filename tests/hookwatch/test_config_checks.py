"""Every setting checked: HOOKWATCH_* and [server] ranges, check-config [FILE], serve refusing
the same lines, `hookwatch config-schema`, and the example config at the repo root."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tomllib
from pathlib import Path
from typing import Any

import jsonschema_rs
import pytest

from hookwatch.cli import main
from hookwatch.config import ConfigError, load_config
from hookwatch.settings import ServerSettings, Settings, load_settings

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = ROOT / "hookwatch.example.toml"
EXAMPLE_ENV = {
    "PAGERDUTY_ROUTING_KEY": "P" * 32,
    "SLACK_WEBHOOK_URL": "https://hooks.slack.com/services/T0/B0/example",
    "SMTP_PASSWORD": "example-password",
    "ALERT_WEBHOOK_SECRET": "whsec_ZXhhbXBsZS1zZWNyZXQtZXhhbXBsZS1zZWNyZXQ=",
    "DISCORD_WEBHOOK_URL": "https://discord.com/api/webhooks/123/example-token",
    "TEAMS_WEBHOOK_URL": "https://example.powerplatform.com/workflows/1/invoke?sig=example",
    "TELEGRAM_BOT_TOKEN": "123456789:AAexampleTokenExampleTokenExample12",
}
SCRIPT = Path(sys.executable).parent / "hookwatch"


@pytest.fixture(autouse=True)
def _no_hookwatch_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in list(os.environ):
        if name.startswith("HOOKWATCH_"):
            monkeypatch.delenv(name)


def check(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, list[str], str]:
    code = main(["check-config", *argv])
    out = capsys.readouterr()
    return code, out.err.strip().splitlines(), out.out


def run(*argv: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith("HOOKWATCH_")}
    return subprocess.run([str(SCRIPT), *argv], capture_output=True, text=True,
                          env={**clean, **env}, timeout=60, check=False)


# One bad value per setting, as the environment would give it, and the line it gets.
BAD: dict[str, tuple[str, str]] = {
    "database_url": ("mysql://db/h", "must be a sqlite:///… or postgresql+psycopg://… URL"),
    "webhook_secrets": ("whsec_c2Vj plain-secret",
                        "secret 2 of 2: a webhook secret must start with whsec_ (HMAC) or "
                        "whpk_ (ed25519)"),
    "signature_tolerance": ("-5", "must be a whole number of seconds from 1 to 86400"),
    "replicate_api_url": ("api.replicate.com", "must be an http:// or https:// URL with a host"),
    "host": (" ", "must be a host name or address, e.g. 127.0.0.1 or 0.0.0.0"),
    "port": ("eighty", "must be a whole number from 1 to 65535"),
    "public_url": ("hooks.example.com", "must be an http:// or https:// URL with a host"),
    "max_body_bytes": ("0", "must be a whole number of bytes from 1 to 1073741824 (1 GiB)"),
    "body_timeout": ("0", "must be a number of seconds greater than 0"),
    "max_buffered_bytes": ("0", "must be a whole number of bytes, 1 or more"),
    "commit_stall_after": ("0", "must be a number of seconds greater than 0"),
    "sqlite_busy_timeout": ("-1", "must be a number of seconds, 0 or more"),
    "sqlite_synchronous": ("OFF", "must be FULL or NORMAL"),
    "batch_max": ("0", "must be a whole number from 1 to 100000"),
    "writer_process": ("maybe", "must be true or false"),
    "evaluate_interval": ("-1", "must be a number of seconds from 0.1 to 86400"),
    "deliver_interval": ("0", "must be a number of seconds from 0.1 to 86400"),
    "reconcile_after": ("-1", "must be a number of seconds, 0 or more"),
    "reconcile_interval": ("nan", "must be a number of seconds from 0.1 to 86400"),
    "retention_days": ("0", "must be a whole number of days from 1 to 36500"),
    "delivery_max_age": ("inf", "must be a number of seconds greater than 0"),
    "show_payloads": ("2", "must be true or false"),
    "auto_migrate": ("sometimes", "must be true or false"),
    "public_badges": ("maybe", "must be true or false"),
}
# Any string will do; data_dir is checked at start-up, where `serve` tries to write in it.
FREE_FORM = {"ingest_token", "dashboard_token", "viewer_token", "replicate_api_token",
             "data_dir", "allowed_hosts"}


def test_every_setting_has_a_checked_type_or_is_free_form() -> None:
    assert set(BAD) | FREE_FORM == set(ServerSettings.model_fields)


@pytest.mark.parametrize("name", sorted(BAD))
def test_a_bad_environment_variable_is_one_line_naming_it(
    name: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    value, sentence = BAD[name]
    monkeypatch.setenv(f"HOOKWATCH_{name.upper()}", value)
    with pytest.raises(ConfigError) as info:
        load_settings()
    assert info.value.lines() == [f"HOOKWATCH_{name.upper()}: {sentence}"]
    if name == "webhook_secrets":
        assert "plain-secret" not in str(info.value)


def test_server_table_values_are_checked_with_the_file_named(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "hookwatch.toml"
    path.write_text('[server]\nevaluate_interval = -1\nport = "eighty"\nprot = 1\n')
    code, err, _ = check(capsys, str(path))
    assert code == 1
    assert err == [
        f"{path}: server.evaluate_interval: must be a number of seconds from 0.1 to 86400",
        f"{path}: server.port: must be a whole number from 1 to 65535",
        f"{path}: server.prot: unknown key (did you mean port?)",
    ]


def test_environment_and_file_problems_are_reported_together(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "hookwatch.toml"
    path.write_text('[[rules]]\nname = "r"\nkind = "error_rate"\nscope = "deployment"\n'
                    'window = "10x"\n')
    monkeypatch.setenv("HOOKWATCH_DELIVER_INTERVAL", "-1")
    code, err, _ = check(capsys, str(path))
    assert code == 1
    assert err == [
        "HOOKWATCH_DELIVER_INTERVAL: must be a number of seconds from 0.1 to 86400",
        f"{path}: rules[0] (r): window: bad duration '10x': must be a duration string such as "
        '"45s", "10m", "1h30m" or "2d"',
    ]


def test_the_environment_wins_and_a_good_one_hides_a_bad_file_value(tmp_path: Path,
                                                                    monkeypatch: pytest.MonkeyPatch
                                                                    ) -> None:
    path = tmp_path / "hookwatch.toml"
    path.write_text("[server]\nevaluate_interval = 30\n")
    monkeypatch.setenv("HOOKWATCH_EVALUATE_INTERVAL", "5")
    assert load_settings(config=path).evaluate_interval == 5.0
    assert load_settings(config=path, port=9000).port == 9000
    with pytest.raises(ConfigError) as info:
        load_settings(config=path, port=0)
    assert info.value.lines() == ["--port: must be a whole number from 1 to 65535"]


def test_check_config_without_a_file_reads_hookwatch_config(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    assert check(capsys) == (2, ["check-config: give a FILE or set HOOKWATCH_CONFIG"], "")
    path = tmp_path / "env.toml"
    path.write_text('[inhibit]\nenabled = "no"\n')
    monkeypatch.setenv("HOOKWATCH_CONFIG", str(path))
    code, err, _ = check(capsys)
    assert (code, err) == (1, [f"{path}: inhibit: enabled: must be true or false, not 'no'"])
    path.write_text("[inhibit]\nenabled = false\n")
    code, err, out = check(capsys)
    assert (code, err) == (0, [])
    assert out.startswith(f"{path}: OK (6 rules, 0 notifiers")  # the built-in ones
    monkeypatch.setenv("HOOKWATCH_CONFIG", str(tmp_path / "missing.toml"))
    assert check(capsys)[:2] == (1, [f"{tmp_path / 'missing.toml'}: no such file"])


def test_serve_refuses_the_same_problems_with_the_same_lines(tmp_path: Path) -> None:
    """The installed script, as a user runs it: one line each, exit 1, no traceback."""
    path = tmp_path / "bad.toml"
    path.write_text('[server]\nport = "eighty"\n[notifiers.team]\ntype = "slack"\n'
                    'webhook_url = "${UNSET_SLACK_URL}"\n')
    env = {"HOOKWATCH_EVALUATE_INTERVAL": "-1", "HOOKWATCH_DATABASE_URL":
           f"sqlite:///{tmp_path / 'h.db'}"}
    expected = [
        "HOOKWATCH_EVALUATE_INTERVAL: must be a number of seconds from 0.1 to 86400",
        f"{path}: server.port: must be a whole number from 1 to 65535",
        f"{path}: notifiers.team.webhook_url: environment variable UNSET_SLACK_URL is not set",
    ]
    checked = run("check-config", str(path), env=env)
    served = run("serve", "--config", str(path), env=env)
    for done in (checked, served):
        assert done.returncode == 1, done
        assert done.stderr.strip().splitlines() == expected
        assert "Traceback" not in done.stdout + done.stderr
    assert not (tmp_path / "h.db").exists()  # refused before touching the database


def test_the_example_config_passes_check_config(capsys: pytest.CaptureFixture[str],
                                                monkeypatch: pytest.MonkeyPatch) -> None:
    for name, value in EXAMPLE_ENV.items():
        monkeypatch.setenv(name, value)
    code, err, out = check(capsys, str(EXAMPLE))
    assert (code, err) == (0, [])
    assert ("OK (9 rules, 8 notifiers: chat, hook, mail, oncall, phone, room, team, tg)"
            in out)
    config = load_config(EXAMPLE)
    from hookwatch.alerts.rules import KINDS
    from hookwatch.notifiers.registry import NOTIFIERS

    # Every kind and channel type that exists is shown; a new one must be added to the example.
    assert sorted({r.kind for r in config.rules}) == sorted(KINDS)
    assert sorted({n.type for n in config.notifiers.values()}) == sorted(NOTIFIERS)
    monkeypatch.delenv("SMTP_PASSWORD")
    code, err, _ = check(capsys, str(EXAMPLE))
    assert (code, err) == (1, [f"{EXAMPLE}: notifiers.mail.password: environment variable "
                                "SMTP_PASSWORD is not set"])


def schema(capsys: pytest.CaptureFixture[str]) -> dict[str, Any]:
    assert main(["config-schema"]) == 0
    document: dict[str, Any] = json.loads(capsys.readouterr().out)
    return document


def test_config_schema_validates_the_example_and_refuses_mistakes(
    capsys: pytest.CaptureFixture[str],
) -> None:
    document = schema(capsys)
    assert document["$schema"] == "https://json-schema.org/draft/2020-12/schema"
    validator = jsonschema_rs.validator_for(document)
    example = tomllib.loads(EXAMPLE.read_text())
    assert list(validator.iter_errors(example)) == []

    def refused(change: dict[str, Any]) -> bool:
        return not validator.is_valid({**example, **change})

    rule = example["rules"][0]
    assert refused({"colour": "red"})
    assert refused({"rules": [{**rule, "windw": "10m"}]})
    assert refused({"rules": [{k: v for k, v in rule.items() if k != "kind"}]})
    assert refused({"rules": [{**rule, "kind": "queue"}]})
    assert refused({"rules": [{**rule, "window": 600}]})
    assert refused({"rules": [{**rule, "window": "10 minutes"}]})
    assert refused({"rules": [{**rule, "threshold": 1.5}]})
    assert refused({"notifiers": {"x": {"type": "sms"}}})
    assert refused({"notifiers": {"x": {"smtp_host": "h"}}})  # no type
    assert refused({"notifiers": {"x": {**example["notifiers"]["mail"], "smtp_port": 70000}}})
    assert refused({"server": {"port": 0}})
    assert refused({"server": {"evaluate_interval": -1}})
    assert not refused({"server": {"webhook_secrets": "whsec_a whsec_b"}})


def test_schema_defaults_are_written_as_the_file_writes_them(
    capsys: pytest.CaptureFixture[str],
) -> None:
    rule = schema(capsys)["$defs"]["ErrorRateRule"]
    assert rule["properties"]["window"]["default"] == "10m"
    assert rule["properties"]["for"]["default"] == "0s"
    assert rule["required"][0] == "kind"


def test_settings_still_take_python_values() -> None:
    settings = Settings(port=8123, evaluate_interval=0.5, webhook_secrets=["whsec_c2Vj"])
    assert (settings.port, settings.evaluate_interval) == (8123, 0.5)


def test_server_table_unset_variable_and_not_a_table(tmp_path: Path,
                                                     capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "hookwatch.toml"
    path.write_text('[server]\npublic_url = "${UNSET_PUBLIC_URL}"\n')
    assert check(capsys, str(path))[:2] == (
        1, [f"{path}: server.public_url: environment variable UNSET_PUBLIC_URL is not set"])
    path.write_text("server = 5\n")
    assert check(capsys, str(path))[:2] == (1, [f"{path}: server: must be a table"])
