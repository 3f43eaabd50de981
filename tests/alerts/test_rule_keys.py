"""check-config on the latency and spend kinds, `outcomes`, `no_data` and [pricing]: every
problem is one line that names the key."""

from __future__ import annotations

from pathlib import Path

import pytest

from hookwatch.alerts.pricing import DEFAULT_AS_OF, DEFAULT_HARDWARE
from hookwatch.alerts.rules import ErrorRateRule, LatencyRule, SpendRule
from hookwatch.cli import main
from hookwatch.config import ConfigError, load_config, parse_config

BASE: dict[str, object] = {"name": "r", "scope": "deployment"}
LATENCY: dict[str, object] = {**BASE, "kind": "latency", "threshold": "60s"}
SPEND: dict[str, object] = {**BASE, "kind": "spend", "threshold": 25.0}


PRICED = {"scopes": {"*": "cpu"}}


def problems_of(rule: dict[str, object]) -> list[str]:
    try:
        parse_config({"rules": [rule], "pricing": PRICED}, env={})
    except ConfigError as exc:
        return exc.problems
    return []


@pytest.mark.parametrize(
    ("rule", "expected"),
    [
        ({**LATENCY, "metric": "gpu_time"}, "rules[0] (r): metric: 'gpu_time' is not one of "
                                            "queue_time, predict_time, total_time"),
        ({**LATENCY, "percentile": 40}, "rules[0] (r): percentile: 40 is out of range "
                                        "[50, 99.9]"),
        ({**LATENCY, "percentile": "p95"}, "rules[0] (r): percentile: must be a number, not "
                                           "'p95'"),
        ({**LATENCY, "threshold": 60}, "rules[0] (r): threshold: must be a duration string "
                                       "such as \"45s\", \"10m\", \"1h30m\" or \"2d\", not int 60"),
        ({**LATENCY, "threshold": "0s"}, "rules[0] (r): threshold: must be longer than zero"),
        ({k: v for k, v in LATENCY.items() if k != "threshold"},
         "rules[0] (r): threshold: is required for latency: a duration such as \"60s\""),
        ({**LATENCY, "outcomes": ["aborted"]}, "rules[0] (r): outcomes: not valid for kind "
                                               "'latency'"),
        ({**SPEND, "threshold": 0}, "rules[0] (r): threshold: 0 is out of range (0, 1e+09]"),
        ({**LATENCY, "no_data": 1}, "rules[0] (r): no_data: 1 is not one of keep, resolve, "
                                    "alert"),
        ({**SPEND, "threshold": "$25"}, "rules[0] (r): threshold: must be a number, not '$25'"),
        ({**SPEND, "metric": "queue_time"}, "rules[0] (r): metric: not valid for kind 'spend'"),
        ({k: v for k, v in SPEND.items() if k != "threshold"},
         "rules[0] (r): threshold: is required for spend: US dollars, e.g. 25.0"),
        ({**BASE, "kind": "error_rate", "outcomes": "aborted"},
         "rules[0] (r): outcomes: must be a non-empty list drawn from failed, canceled, "
         "aborted, e.g. [\"aborted\"]"),
        ({**BASE, "kind": "error_rate", "outcomes": []},
         "rules[0] (r): outcomes: must be a non-empty list drawn from failed, canceled, "
         "aborted, e.g. [\"aborted\"]"),
        ({**BASE, "kind": "error_rate", "outcomes": ["succeeded", "oom"]},
         "rules[0] (r): outcomes: 'succeeded', 'oom' not among failed, canceled, aborted "
         "(succeeded is the good outcome every rate divides by)"),
        ({**BASE, "kind": "error_rate", "outcomes": ["aborted", "aborted"]},
         "rules[0] (r): outcomes: lists an outcome twice"),
        ({**BASE, "kind": "stuck", "no_data": "ignore"},
         "rules[0] (r): no_data: 'ignore' is not one of keep, resolve, alert"),
    ],
)
def test_one_line_per_problem(rule: dict[str, object], expected: str) -> None:
    assert problems_of(rule) == [expected]


def test_new_keys_parse() -> None:
    rules = parse_config({"rules": [
        {**LATENCY, "name": "a", "metric": "total_time", "percentile": 99.9, "window": "1h",
         "no_data": "resolve", "min_predictions": 5},
        {**SPEND, "name": "b"},
        {**BASE, "name": "c", "kind": "error_rate", "outcomes": ["aborted", "failed"]},
    ], "pricing": PRICED}, env={}).rules
    latency, spend, rate = rules
    assert isinstance(latency, LatencyRule) and isinstance(spend, SpendRule)
    assert isinstance(rate, ErrorRateRule)
    assert (latency.metric, latency.percentile, latency.threshold, latency.window,
            latency.no_data, latency.min_predictions) == ("total_time", 99.9, 60.0, 3600.0,
                                                          "resolve", 5)
    assert (spend.threshold, spend.window, spend.min_predictions, spend.no_data) == (
        25.0, 3600.0, 0, "keep")
    assert rate.outcomes == ("aborted", "failed") and rate.threshold == 0.2
    assert latency.describe() == ("deployment '*': total time p99.9 > 1m over 1h "
                                  "(>= 5 predictions)")


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "hookwatch.toml"
    path.write_text(text)
    return path


def config_problems(path: Path) -> list[str]:
    with pytest.raises(ConfigError) as caught:
        load_config(path)
    return caught.value.problems


def test_pricing_problems(tmp_path: Path) -> None:
    path = write(tmp_path, """
[pricing]
as_of = "last week"
currency = "EUR"
[pricing.hardware]
"gpu-a100-large" = "cheap"
"gpu-b200" = 2.5
[pricing.scopes]
"acme/*" = "gpu-z9"

[[rules]]
name = "spend"
kind = "spend"
scope = "deployment"
threshold = 25.0
""")
    assert config_problems(path) == [
        "pricing.as_of: 'last week' is not a date such as \"2026-11-01\"",
        "pricing.currency: unknown key (expected one of as_of, hardware, scopes)",
        "pricing.hardware.gpu-a100-large: must be a number, not 'cheap'",
        "pricing.hardware.gpu-b200: 2.5 is out of range [0, 1)",
    ]
    path.write_text(path.read_text().replace('as_of = "last week"\ncurrency = "EUR"\n', "")
                    .replace('"gpu-a100-large" = "cheap"\n"gpu-b200" = 2.5\n', ""))
    assert config_problems(path) == [
        "pricing.scopes: 'gpu-z9' not in the hardware table (known: "
        + ", ".join(sorted(DEFAULT_HARDWARE)) + "; add others under [pricing.hardware])"]
    path.write_text(path.read_text().replace('"acme/*" = "gpu-z9"\n', ""))
    assert config_problems(path) == [
        "rules[0] (spend): kind: a spend rule needs [pricing.scopes] to map its scopes to "
        "hardware; without it every spend is unknown"]


def test_pricing_overrides_and_order(tmp_path: Path) -> None:
    path = write(tmp_path, """
[pricing]
as_of = 2026-11-01
[pricing.hardware]
"gpu-a100-large" = 0.0012
"my-box" = 0.0005
[pricing.scopes]
"acme/sdxl-canary" = "my-box"
"acme/*" = "gpu-a100-large"
""")
    pricing = load_config(path).pricing
    assert pricing.as_of == "2026-11-01"
    assert pricing.price("deployment", "acme/sdxl-canary") == 0.0005  # first match wins
    assert pricing.price("deployment", "acme/sdxl-prod") == 0.0012
    assert pricing.price("model", "other/x") is None
    assert pricing.hardware["gpu-h100"] == DEFAULT_HARDWARE["gpu-h100"] == 0.001525
    assert load_config(None).pricing.as_of == DEFAULT_AS_OF


def test_check_config_prints_each_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]
                                       ) -> None:
    path = write(tmp_path, """
[[rules]]
name = "cold"
kind = "latency"
scope = "deployment"
metric = "boot_time"
percentile = 100
threshold = "1m"
no_data = "maybe"
""")
    assert main(["check-config", str(path)]) == 1
    assert sorted(capsys.readouterr().err.splitlines()) == [
        f"{path}: rules[0] (cold): metric: 'boot_time' is not one of queue_time, "
        "predict_time, total_time",
        f"{path}: rules[0] (cold): no_data: 'maybe' is not one of keep, resolve, alert",
        f"{path}: rules[0] (cold): percentile: 100 is out of range [50, 99.9]",
    ]
