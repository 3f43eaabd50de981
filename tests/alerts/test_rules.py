"""[[rules]] and [inhibit] checking, durations, defaults, and `hookwatch check-config`."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from hookwatch.alerts.duration import DurationError, format_duration, parse_duration
from hookwatch.alerts.rules import DEFAULT_BURN_WINDOWS, BurnRateRule, BurnWindow, default_rules
from hookwatch.cli import main
from hookwatch.config import ConfigError, load_config, parse_config

CONTRACT_EXAMPLE = """
[server]
public_url = "https://hooks.example.com"

[notifiers.oncall]
type = "pagerduty"
routing_key = "${PAGERDUTY_ROUTING_KEY}"

[notifiers.team]
type = "slack"
webhook_url = "${SLACK_WEBHOOK_URL}"

[notifiers.mail]
type = "email"
smtp_host = "localhost"
smtp_port = 25
starttls = false
from = "hookwatch@example.com"
to = ["ml-oncall@example.com"]

[[rules]]
name = "deployment-error-rate"
kind = "error_rate"
scope = "deployment"
match = "acme/*"
window = "10m"
threshold = 0.20
min_predictions = 20
for = "1m"
keep_firing_for = "2m"
severity = "critical"
notify = ["oncall", "team", "mail"]
repeat_interval = "4h"

[[rules]]
name = "model-slo"
kind = "burn_rate"
scope = "model"
slo = 0.995
windows = [{long = "1h", short = "5m", factor = 14.4}, {long = "3d", short = "6h", factor = 1}]
notify = ["team"]

[[rules]]
name = "stuck"
kind = "stuck"
scope = "deployment"
window = "15m"
threshold = 3

[[rules]]
name = "quiet"
kind = "no_traffic"
scope = "model"
window = "1h30m"
lookback = "2d"

[inhibit]
enabled = false
"""
ENV = {"PAGERDUTY_ROUTING_KEY": "R" * 32, "SLACK_WEBHOOK_URL": "https://hooks.slack.com/services/T/B/x"}


@pytest.mark.parametrize(
    ("text", "seconds"),
    [("45s", 45), ("10m", 600), ("1h30m", 5400), ("2d", 172800), ("1w", 604800),
     ("500ms", 0.5), ("1m30s", 90), ("0", 0), ("0s", 0)],
)
def test_durations(text: str, seconds: float) -> None:
    assert parse_duration(text) == seconds
    assert parse_duration(format_duration(seconds)) == seconds


@pytest.mark.parametrize("bad", ["10", "10x", "1h1h", "30m1h", "m", "", " 5m", "1.5h", "-5m",
                                 60, None, "5 m"])
def test_bad_durations(bad: object) -> None:
    with pytest.raises(DurationError):
        parse_duration(bad)


def test_contract_example_parses(tmp_path: Path) -> None:
    path = tmp_path / "hookwatch.toml"
    path.write_text(CONTRACT_EXAMPLE)
    config = load_config(path, env=ENV)
    dep, slo, stuck, quiet = config.rules
    assert (dep.name, dep.kind, dep.scope, dep.match) == (
        "deployment-error-rate", "error_rate", "deployment", "acme/*")
    assert (dep.window, dep.threshold, dep.min_predictions, dep.for_, dep.keep_firing_for) == (
        600, 0.2, 20, 60, 120)
    assert (dep.severity, dep.notify, dep.repeat_interval) == (
        "critical", ("oncall", "team", "mail"), 14400)
    assert isinstance(slo, BurnRateRule) and slo.slo == 0.995
    assert slo.burn_windows == (BurnWindow(long=3600, short=300, factor=14.4),
                                BurnWindow(long=259200, short=21600, factor=1.0))
    assert (stuck.window, stuck.threshold) == (900, 3)
    assert (quiet.window, quiet.lookback) == (5400, 172800)
    assert config.inhibit.enabled is False
    assert config.server.public_url == "https://hooks.example.com"
    assert "over 10m" in dep.describe()


SLACK = {"type": "slack", "webhook_url": "https://hooks.slack.com/services/T/B/x"}


def problems_of(rules: object, notifiers: set[str] | None = None) -> list[str]:
    tables = {name: SLACK for name in notifiers or {"team"}}
    try:
        parse_config({"notifiers": tables, "rules": rules}, env={})
    except ConfigError as exc:
        return exc.problems
    return []


BASE: dict[str, object] = {"name": "r", "kind": "error_rate", "scope": "deployment"}


@pytest.mark.parametrize(
    ("extra", "expected"),
    [
        ({"windw": "10m"}, "rules[0] (r): windw: unknown key (did you mean window?)"),
        ({"colour": "red"}, "rules[0] (r): colour: unknown key (expected one of for, "
                            "group_by, group_interval, keep_firing_for, kind, match, "
                            "min_predictions, name, no_data, notify, outcomes, repeat_interval, "
                            "scope, severity, threshold, window)"),
        ({"group_by": ["rule", "team"]}, "rules[0] (r): group_by: unknown label 'team' (one of "
                                         "rule, scope, name, model, severity)"),
        ({"group_interval": "0s"}, "rules[0] (r): group_interval: must be longer than zero"),
        ({"kind": "stuck", "window": "1h", "for": "5m", "min_predictions": 3},
         "rules[0] (r): min_predictions: not valid for kind 'stuck'"),
        ({"kind": None}, "rules[0] (r): kind: None is not one of error_rate, burn_rate, stuck, "
                         "no_traffic, regression, new_error, latency, spend"),
        ({"window": "10x"}, "rules[0] (r): window: bad duration '10x': must be a duration "
                            'string such as "45s", "10m", "1h30m" or "2d"'),
        ({"for": 60}, "rules[0] (r): for: must be a duration string such as \"45s\", \"10m\", "
                      "\"1h30m\" or \"2d\", not int 60"),
        ({"window": "0s"}, "rules[0] (r): window: must be longer than zero"),
        ({"kind": "vibes"}, "rules[0] (r): kind: 'vibes' is not one of error_rate, "
                            "burn_rate, stuck, no_traffic, regression, new_error, latency, "
                            "spend"),
        ({"scope": "region"}, "rules[0] (r): scope: 'region' is not one of model, "
                              "deployment, version"),
        ({"notify": ["team", "pager"]}, "rules[0] (r): notify: unknown notifier 'pager' "
                                         "(known: team)"),
        ({"notify": ["a", "b"]}, "rules[0] (r): notify: unknown notifiers 'a', 'b' "
                                 "(known: team)"),
        ({"notify": "team"}, "rules[0] (r): notify: must be a list of notifier names"),
        ({"threshold": 1.5}, "rules[0] (r): threshold: 1.5 is out of range [0, 1)"),
        ({"threshold": "20%"}, "rules[0] (r): threshold: must be a number, not '20%'"),
        ({"min_predictions": 2.5}, "rules[0] (r): min_predictions: must be an integer, not 2.5"),
        ({"severity": "page"}, "rules[0] (r): severity: 'page' is not one of critical, error, "
                               "warning, info"),
        ({"slo": 0.99}, "rules[0] (r): slo: not valid for kind 'error_rate'"),
        ({"match": ""}, "rules[0] (r): match: must be a non-empty glob string such as "
                        "\"acme/*\""),
        ({"kind": "burn_rate"}, "rules[0] (r): slo: is required for burn_rate, e.g. slo = 0.99"),
        ({"kind": "burn_rate", "slo": 1.0}, "rules[0] (r): slo: 1.0 is out of range (0, 1)"),
        ({"kind": "burn_rate", "slo": 0.99, "windows": [{"long": "5m", "short": "1h",
                                                         "factor": 2}]},
         "rules[0] (r): windows[0]: short: must be shorter than long"),
        ({"kind": "burn_rate", "slo": 0.99, "windows": [{"long": "1h", "factor": 2}]},
         "rules[0] (r): windows[0]: short: is required"),
        ({"kind": "burn_rate", "slo": 0.99, "windows": []},
         "rules[0] (r): windows: must be a non-empty list of {long, short, factor} tables, "
         'e.g. [{long = "1h", short = "5m", factor = 14.4}]'),
        ({"kind": "burn_rate", "slo": 0.99, "windows": ["1h"]},
         "rules[0] (r): windows[0]: must be a table {long, short, factor}"),
        ({"kind": "burn_rate", "slo": 0.99, "windows": [{"long": "1h", "short": "5m",
                                                         "factor": 0}]},
         "rules[0] (r): windows[0]: factor: 0 is out of range (0, 1e+06]"),
        ({"kind": "stuck", "threshold": 0.5}, "rules[0] (r): threshold: must be an integer, "
                                              "not 0.5"),
        ({"kind": "no_traffic", "window": "2d", "lookback": "1d"},
         "rules[0] (r): lookback: must be longer than window"),
    ],
)
def test_one_clear_line_per_problem(extra: dict[str, object], expected: str) -> None:
    assert problems_of([{**BASE, **extra}]) == [expected]


def test_several_problems_and_missing_fields() -> None:
    problems = problems_of([{"kind": "error_rate"}, {**BASE, "window": "1h30"}, BASE, BASE])
    assert problems == [
        "rules[0]: name: is required: letters, digits, '_', '.', ':' or '-', at most 100 "
        "characters",
        "rules[0]: scope: is required (one of model, deployment, version)",
        "rules[1] (r): window: bad duration '1h30': must be a duration string such as \"45s\", "
        "\"10m\", \"1h30m\" or \"2d\"",
        # rules[1] is bad, but its name is still taken: the old check skipped it
        "rules[2] (r): name: 'r' is used by an earlier rule",
        "rules[3] (r): name: 'r' is used by an earlier rule",
    ]
    assert problems_of("nope") == ["rules: must be an array of tables ([[rules]])"]
    assert problems_of(["nope"]) == ["rules[0]: must be a table"]


def test_burn_rate_defaults_are_the_sre_workbook_pairs() -> None:
    (rule,) = parse_config({"rules": [{**BASE, "kind": "burn_rate", "slo": 0.999}]}).rules
    assert isinstance(rule, BurnRateRule)
    assert rule.burn_windows == DEFAULT_BURN_WINDOWS
    assert [(p.long, p.short, p.factor) for p in DEFAULT_BURN_WINDOWS] == [
        (3600, 300, 14.4), (21600, 1800, 6.0)]


def test_defaults_without_config() -> None:
    config = load_config(None)
    rules = {r.name: r for r in config.rules}
    assert rules == {r.name: r for r in default_rules()}
    dep = rules["deployment-error-rate"]
    assert (dep.kind, dep.scope, dep.window, dep.threshold, dep.min_predictions) == (
        "error_rate", "deployment", 600, 0.2, 20)
    assert (rules["model-error-rate"].scope, rules["model-stuck"].window) == ("model", 900)
    assert rules["deployment-stuck"].kind == "stuck"
    assert config.inhibit.enabled is True


def test_rules_without_a_file_notify_every_notifier() -> None:
    config = parse_config({"notifiers": {"team": SLACK, "b": SLACK}})
    assert {r.notify for r in config.rules} == {("b", "team")}


def test_numbers_are_not_durations_in_the_file_but_are_in_code() -> None:
    assert problems_of([{**BASE, "window": 600}]) == [
        'rules[0] (r): window: must be a duration string such as "45s", "10m", "1h30m" or '
        '"2d", not int 600']
    (rule,) = default_rules()[:1]
    assert rule.window == 600.0  # type: ignore[union-attr]
    assert rule.model_dump(mode="json")["window"] == "10m"


def test_inhibit_table() -> None:
    def inhibit_problems(table: object) -> list[str]:
        try:
            parse_config({"inhibit": table})
        except ConfigError as exc:
            return exc.problems
        return []

    assert parse_config({"inhibit": {}}).inhibit.enabled is True
    assert inhibit_problems({"enabled": "yes", "mode": 1}) == [
        "inhibit: enabled: must be true or false, not 'yes'",
        "inhibit: mode: unknown key (expected one of enabled)"]
    assert inhibit_problems([]) == ["inhibit: must be a table"]


def test_check_config_ok(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                         monkeypatch: pytest.MonkeyPatch) -> None:
    for name, value in ENV.items():
        monkeypatch.setenv(name, value)
    path = tmp_path / "ok.toml"
    path.write_text(CONTRACT_EXAMPLE)
    assert main(["check-config", str(path)]) == 0
    out = capsys.readouterr()
    assert "OK (4 rules, 3 notifiers" in out.out and out.err == ""


def test_check_config_reports_each_problem(tmp_path: Path,
                                           capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "bad.toml"
    path.write_text(
        '[[rules]]\nname = "a"\nkind = "error_rate"\nscope = "deployment"\nwindow = "10x"\n'
        'notify = ["nobody"]\ncolour = "red"\n'
    )
    assert main(["check-config", str(path)]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert err == [
        f"{path}: rules[0] (a): colour: unknown key (expected one of for, group_by, "
        "group_interval, keep_firing_for, kind, match, min_predictions, name, no_data, notify, "
        "outcomes, repeat_interval, scope, severity, threshold, window)",
        f"{path}: rules[0] (a): notify: unknown notifier 'nobody' (known: none configured)",
        f"{path}: rules[0] (a): window: bad duration '10x': must be a duration string such as "
        '"45s", "10m", "1h30m" or "2d"',
    ]


def test_check_config_command_line(tmp_path: Path) -> None:
    """The installed console script, as a user runs it."""
    path = tmp_path / "bad.toml"
    path.write_text('[[rules]]\nname = "a"\nkind = "error_rate"\nscope = "deployment"\n'
                    'for = "1h30"\n')
    script = Path(sys.executable).parent / "hookwatch"
    env = {k: v for k, v in os.environ.items() if not k.startswith("HOOKWATCH_")}
    done = subprocess.run([str(script), "check-config", str(path)], capture_output=True,
                          text=True, env=env, timeout=60, check=False)
    assert done.returncode == 1
    assert done.stderr.strip() == (
        f"{path}: rules[0] (a): for: bad duration '1h30': must be a duration string such as "
        '"45s", "10m", "1h30m" or "2d"'
    )
    with pytest.raises(ConfigError):
        load_config(path)
