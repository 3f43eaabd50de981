"""[notifiers.NAME] tables: each channel's keys, one clear problem per mistake, no secret echoed."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from hookwatch.cli import main
from hookwatch.config import ConfigError, load_config, parse_config
from hookwatch.notifiers.mail import EmailOptions
from hookwatch.notifiers.pagerduty import DEFAULT_EVENTS_URL, PagerDutyOptions
from hookwatch.notifiers.registry import NOTIFIERS, AnyOptions
from hookwatch.notifiers.slack import SlackOptions
from hookwatch.notifiers.webhook import WebhookOptions
from tests.notifiers.helpers import HOOK_SECRET, ROUTING_KEY, SLACK_TOKEN, SMTP_PASSWORD

SLACK_URL = "https://hooks.slack.com/services/T0/B0/Zm9vYmFyYmF6cXV4"
VALID: dict[str, dict[str, Any]] = {
    "oncall": {"type": "pagerduty", "routing_key": ROUTING_KEY},
    "team": {"type": "slack", "webhook_url": SLACK_URL},
    "bot": {"type": "slack", "token": SLACK_TOKEN, "channel": "C0123", "send_resolved": False},
    "mail": {"type": "email", "smtp_host": "localhost", "smtp_port": 25, "starttls": False,
             "username": "", "password": "", "from": "hookwatch@example.com",
             "to": ["ml-oncall@example.com"]},
    "hook": {"type": "webhook", "url": "https://example.com/alerts", "secret": HOOK_SECRET},
}


def parse(tables: Any) -> tuple[dict[str, Any], list[str]]:
    try:
        return parse_config({"notifiers": tables}, env={}).notifiers, []
    except ConfigError as exc:
        return {}, exc.problems


def test_the_registry_is_explicit() -> None:
    assert sorted(NOTIFIERS) == ["discord", "email", "ntfy", "pagerduty", "slack", "teams",
                                 "telegram", "webhook"]
    # The union pydantic validates with and the registry name the same models.
    members = {m.model_fields["type"].default: m for m in AnyOptions.__args__}
    assert {t: c.options for t, c in NOTIFIERS.items()} == members


def test_valid_tables_parse_into_typed_options() -> None:
    configs, problems = parse(VALID)
    assert problems == []
    assert isinstance(configs["oncall"].options, PagerDutyOptions)
    assert configs["oncall"].options.events_url == DEFAULT_EVENTS_URL
    assert isinstance(configs["team"].options, SlackOptions)
    assert isinstance(configs["mail"].options, EmailOptions)
    assert configs["mail"].options.password is None  # "" means no login
    assert isinstance(configs["hook"].options, WebhookOptions)
    assert configs["team"].send_resolved is True
    assert configs["bot"].send_resolved is False


def test_secrets_never_print() -> None:
    configs, _ = parse(VALID)
    text = repr(configs) + str(configs)
    for secret in (ROUTING_KEY, SLACK_URL, SLACK_TOKEN, HOOK_SECRET):
        assert secret not in text


@pytest.mark.parametrize(
    ("table", "expected"),
    [
        ({"type": "sms"},
         "notifiers.x.type: must be one of ['discord', 'email', 'ntfy', 'pagerduty', 'slack', "
         "'teams', 'telegram', 'webhook']"),
        ({"routing_key": ROUTING_KEY}, "notifiers.x.type: is required"),
        ({"type": "pagerduty"}, "notifiers.x.routing_key: is required"),
        ({"type": "pagerduty", "routing_key": "short"},
         "notifiers.x.routing_key: must be the 32-character Events API v2 integration key"),
        ({"type": "pagerduty", "routing_key": ROUTING_KEY, "events_url": "ftp://x"},
         "notifiers.x.events_url: must be an http:// or https:// URL with a host"),
        ({"type": "pagerduty", "routing_key": ROUTING_KEY, "severity": "high"},
         "notifiers.x.severity: unknown key"),
        ({"type": "slack"}, "notifiers.x.webhook_url: is required (or token + channel"),
        ({"type": "slack", "token": SLACK_TOKEN}, "notifiers.x.channel: is required with token"),
        ({"type": "slack", "webhook_url": "not a url"},
         "notifiers.x.webhook_url: must be an https:// URL"),
        ({"type": "slack", "webhook_url": SLACK_URL, "token": SLACK_TOKEN, "channel": "C1"},
         "notifiers.x.token: give either webhook_url or token + channel, not both"),
        ({"type": "email", "from": "a@example.com", "to": "b@example.com"},
         "notifiers.x.smtp_host: is required"),
        ({"type": "email", "smtp_host": "h", "from": "a@example.com", "to": ["b@example.com"],
          "smtp_port": 70000}, "notifiers.x.smtp_port: must be a whole number from 1 to 65535"),
        ({"type": "email", "smtp_host": "h", "from": "a@example.com", "to": ["b@example.com"],
          "starttls": "yes"}, "notifiers.x.starttls: must be true or false"),
        ({"type": "email", "smtp_host": "h", "from": "a@example.com", "to": ["b@example.com"],
          "starttls": True, "implicit_tls": True}, "notifiers.x.implicit_tls: cannot be combined"),
        ({"type": "email", "smtp_host": "h", "from": "a@example.com", "to": ["nobody"]},
         "notifiers.x.to[0]: must be an email address"),
        ({"type": "email", "smtp_host": "h", "from": "a@example.com", "to": ["b@example.com"],
          "password": SMTP_PASSWORD}, "notifiers.x.password: is set but username is empty"),
        ({"type": "email", "smtp_host": "h\r\nRCPT TO:<x@y>", "from": "a@example.com",
          "to": ["b@example.com"]}, "notifiers.x.smtp_host: must not contain control characters"),
        ({"type": "webhook", "url": "https://example.com"}, "notifiers.x.secret: is required"),
        ({"type": "webhook", "url": "https://example.com", "secret": "plain-text-secret"},
         "notifiers.x.secret: must be a whsec_ signing secret"),
        ({"type": "webhook", "url": "https://example.com:99999/", "secret": HOOK_SECRET},
         "notifiers.x.url: must be an http:// or https:// URL with a host"),
        ({"type": "webhook", "url": "https://example.com", "secret": HOOK_SECRET,
          "send_resolved": "no"}, "notifiers.x.send_resolved: must be true or false"),
    ],
)
def test_each_mistake_is_one_clear_line(table: dict[str, Any], expected: str) -> None:
    configs, problems = parse({"x": table})
    assert configs == {}
    assert len(problems) == 1, problems
    assert problems[0].startswith(expected), problems


def test_problems_never_quote_a_secret() -> None:
    bad_url = "https://hooks.slack.com/services/T0/B0/s3cr3t with space"
    _, problems = parse({
        "a": {"type": "slack", "webhook_url": bad_url},
        "b": {"type": "pagerduty", "routing_key": "abc-s3cr3t-routing"},
        "c": {"type": "webhook", "url": "https://user:pa55word@:0/x?token=t0ken-s3cr3t",
              "secret": "whsec_!!!notbase64s3cr3t"},
    })
    assert len(problems) == 4, problems
    text = "\n".join(problems)
    for fragment in ("s3cr3t", "pa55word", "t0ken"):
        assert fragment not in text


def test_not_a_table() -> None:
    assert parse([1])[1] == ["notifiers: must be a table of [notifiers.NAME] tables"]
    assert parse({"x": "slack"})[1] == ["notifiers.x: must be a table with a type"]
    assert parse({"bad name!": {}})[1][0].startswith("notifiers.bad name!: a notifier name")


def test_load_config_reads_env_and_check_config_reports(tmp_path: Path,
                                                        capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "hookwatch.toml"
    path.write_text(
        '[notifiers.oncall]\ntype = "pagerduty"\nrouting_key = "${PD_KEY}"\n'
        '[notifiers.team]\ntype = "slack"\nwebhok_url = "https://hooks.slack.com/x"\n'
    )
    with pytest.raises(ConfigError) as info:
        load_config(path, env={"PD_KEY": ROUTING_KEY})
    # The typo is the problem; the options' own checks (webhook_url or token) wait for it.
    assert info.value.problems == [
        "notifiers.team.webhok_url: unknown key (did you mean webhook_url?)",
    ]
    path.write_text('[notifiers.team]\ntype = "slack"\ncolour = "red"\n')
    with pytest.raises(ConfigError) as info:
        load_config(path, env={})
    assert info.value.problems == [
        "notifiers.team.colour: unknown key (expected one of api_url, channel, fallback, "
        "send_resolved, timeout, token, type, webhook_url)",
    ]
    path.write_text('[notifiers.oncall]\ntype = "pagerduty"\nrouting_key = "${PD_KEY}"\n')
    config = load_config(path, env={"PD_KEY": ROUTING_KEY})
    assert config.notifiers["oncall"].options.routing_key.get_secret_value() == ROUTING_KEY
    assert main(["check-config", str(path)]) in (0, 1)
    out = capsys.readouterr()
    assert ROUTING_KEY not in out.out + out.err


def test_an_unset_variable_is_one_line_not_two(tmp_path: Path) -> None:
    path = tmp_path / "hookwatch.toml"
    path.write_text(
        '[notifiers.bot]\ntype = "slack"\ntoken = "${SLACK_BOT_TOKEN}"\nchannel = "C1"\n'
        '[notifiers.mail]\ntype = "email"\nsmtp_host = "h"\nfrom = "a@example.com"\n'
        'to = "b@example.com"\nusername = "alerts"\npassword = "${SMTP_PASSWORD}"\n'
    )
    with pytest.raises(ConfigError) as info:
        load_config(path, env={})
    assert info.value.problems == [
        "notifiers.bot.token: environment variable SLACK_BOT_TOKEN is not set",
        "notifiers.mail.password: environment variable SMTP_PASSWORD is not set",
    ]
