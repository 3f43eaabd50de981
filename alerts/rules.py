"""Alert rules: the config's [[rules]] tables, checked, and the built-in defaults."""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from hookwatch.alerts.duration import DurationError, format_duration, parse_duration

KINDS = ("error_rate", "burn_rate", "stuck", "no_traffic")
SCOPES = ("model", "deployment", "version")
SEVERITIES = ("critical", "error", "warning", "info")
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.:-]{0,99}$")

_COMMON = {"name", "kind", "scope", "match", "for", "keep_firing_for", "severity", "notify",
           "repeat_interval"}
KEYS = {
    "error_rate": _COMMON | {"window", "threshold", "min_predictions"},
    "burn_rate": _COMMON | {"slo", "windows", "min_predictions"},
    "stuck": _COMMON | {"window", "threshold", "lookback"},
    "no_traffic": _COMMON | {"window", "lookback"},
}
DEFAULT_WINDOW = {"error_rate": 600.0, "stuck": 900.0, "no_traffic": 3600.0}


@dataclass(frozen=True)
class BurnWindow:
    """One multiwindow pair: both windows' burn rates must be over `factor`."""

    long: float
    short: float
    factor: float


# The Google SRE workbook's page-worthy pairs for a 30-day SLO:
# https://sre.google/workbook/alerting-on-slos/#6-multiwindow-multi-burn-rate-alerts
DEFAULT_BURN_WINDOWS = (BurnWindow(3600.0, 300.0, 14.4), BurnWindow(21600.0, 1800.0, 6.0))


@dataclass(frozen=True)
class Rule:
    """One checked rule. Times in seconds.

    `threshold`: the error rate for error_rate (fires when over it), the number of stuck
    predictions for stuck (fires at or over it). `window`: the rate window (error_rate), how
    long a prediction may stay non-terminal (stuck), or how long a scope may stay quiet
    (no_traffic). `lookback`: how far back stuck predictions count, and how recently a scope
    must have had traffic for its silence to matter (no_traffic).
    """

    name: str
    kind: str
    scope: str
    match: str = "*"
    window: float = 600.0
    threshold: float = 0.2
    min_predictions: int = 20
    for_: float = 0.0
    keep_firing_for: float = 0.0
    severity: str = "error"
    notify: tuple[str, ...] = ()
    repeat_interval: float = 4 * 3600.0  # 0: no reminders
    slo: float | None = None
    burn_windows: tuple[BurnWindow, ...] = field(default=DEFAULT_BURN_WINDOWS)
    lookback: float = 86400.0

    def windows(self) -> set[float]:
        """Every window this rule reads outcome counts over."""
        if self.kind == "error_rate":
            return {self.window}
        if self.kind == "burn_rate":
            return {w for pair in self.burn_windows for w in (pair.long, pair.short)}
        if self.kind == "no_traffic":
            return {self.window, self.lookback}
        return set()

    def describe(self) -> str:
        """One line for messages and check-config."""
        where = f"{self.scope} {self.match!r}"
        if self.kind == "error_rate":
            return (f"{where}: error rate > {self.threshold:.0%} over "
                    f"{format_duration(self.window)} (>= {self.min_predictions} predictions)")
        if self.kind == "burn_rate":
            pairs = ", ".join(f"{p.factor:g}x over {format_duration(p.long)}/"
                              f"{format_duration(p.short)}" for p in self.burn_windows)
            return f"{where}: SLO {self.slo:.3%} burning {pairs}"
        if self.kind == "stuck":
            return (f"{where}: >= {self.threshold:g} predictions not finished after "
                    f"{format_duration(self.window)}")
        return f"{where}: no finished predictions for {format_duration(self.window)}"


def default_rules(notify: Sequence[str] = ()) -> list[Rule]:
    """Used when the config has no [[rules]]: a fifth of predictions failing, or stuck ones.

    They notify every configured notifier, so a config with channels and no rules still pages.
    """
    to = tuple(notify)
    return [
        Rule(name="deployment-error-rate", kind="error_rate", scope="deployment",
             window=600.0, threshold=0.2, min_predictions=20, severity="error", notify=to),
        Rule(name="model-error-rate", kind="error_rate", scope="model",
             window=600.0, threshold=0.2, min_predictions=20, severity="error", notify=to),
        Rule(name="deployment-stuck", kind="stuck", scope="deployment", window=900.0,
             threshold=1, severity="warning", notify=to),
        Rule(name="model-stuck", kind="stuck", scope="model", window=900.0, threshold=1,
             severity="warning", notify=to),
    ]


class _Checker:
    """Reads one [[rules]] table, appending one line per problem."""

    def __init__(self, raw: dict[str, Any], where: str, problems: list[str]) -> None:
        self.raw = raw
        self.where = where
        self.problems = problems

    def problem(self, key: str, text: str) -> None:
        self.problems.append(f"{self.where}: {key}: {text}")

    def duration(self, key: str, default: float, *, positive: bool = False) -> float:
        if key not in self.raw:
            return default
        try:
            seconds = parse_duration(self.raw[key])
        except DurationError as exc:
            self.problem(key, str(exc))
            return default
        if positive and seconds <= 0:
            self.problem(key, "must be longer than zero")
            return default
        return seconds

    def number(self, key: str, default: float, low: float, high: float, *,
               integer: bool = False, low_open: bool = False, high_open: bool = False) -> float:
        if key not in self.raw:
            return default
        value = self.raw[key]
        kinds = (int,) if integer else (int, float)
        if isinstance(value, bool) or not isinstance(value, kinds):
            self.problem(key, f"must be {'an integer' if integer else 'a number'}, "
                              f"not {value!r}")
            return default
        too_low = value <= low if low_open else value < low
        too_high = value >= high if high_open else value > high
        if too_low or too_high:
            lo, hi = ("(" if low_open else "["), (")" if high_open else "]")
            self.problem(key, f"{value!r} is out of range {lo}{low:g}, {high:g}{hi}")
            return default
        return float(value)

    def choice(self, key: str, options: tuple[str, ...], default: str | None) -> str | None:
        value = self.raw.get(key, default)
        if value is None:
            self.problem(key, f"is required (one of {', '.join(options)})")
        elif value not in options:
            self.problem(key, f"{value!r} is not one of {', '.join(options)}")
            return None
        return str(value) if value is not None else None


def _burn_windows(raw: Any, check: _Checker) -> tuple[BurnWindow, ...]:
    if "windows" not in check.raw:
        return DEFAULT_BURN_WINDOWS
    if not isinstance(raw, list) or not raw:
        check.problem("windows", 'must be a non-empty list of {long, short, factor} tables, '
                                 'e.g. [{long = "1h", short = "5m", factor = 14.4}]')
        return DEFAULT_BURN_WINDOWS
    pairs: list[BurnWindow] = []
    for i, item in enumerate(raw):
        sub = _Checker(item if isinstance(item, dict) else {}, f"{check.where}: windows[{i}]",
                       check.problems)
        if not isinstance(item, dict):
            check.problem(f"windows[{i}]", "must be a table {long, short, factor}")
            continue
        for key in sorted(set(item) - {"long", "short", "factor"}):
            sub.problem(key, "unknown key (expected long, short, factor)")
        missing = [k for k in ("long", "short", "factor") if k not in item]
        if missing:
            sub.problem(", ".join(missing), "is required")
            continue
        long = sub.duration("long", 0.0, positive=True)
        short = sub.duration("short", 0.0, positive=True)
        factor = sub.number("factor", 0.0, 0.0, 1e6, low_open=True)
        if long and short and short >= long:
            sub.problem("short", "must be shorter than long")
        elif long and short and factor:
            pairs.append(BurnWindow(long, short, factor))
    return tuple(pairs) or DEFAULT_BURN_WINDOWS


def _parse_rule(
    raw: dict[str, Any], where: str, notifier_names: set[str], problems: list[str]
) -> Rule | None:
    before = len(problems)
    check = _Checker(raw, where, problems)
    name = raw.get("name")
    if not isinstance(name, str) or not _NAME.match(name):
        check.problem("name", "is required: letters, digits, '_', '.', ':' or '-', "
                              "at most 100 characters")
    kind = check.choice("kind", KINDS, None)
    scope = check.choice("scope", SCOPES, None)
    allowed = KEYS.get(kind or "", set().union(*KEYS.values()))
    for key in sorted(set(raw) - allowed):
        known = any(key in keys for keys in KEYS.values())
        check.problem(key, f"not valid for kind {kind!r}" if known and kind else "unknown key")
    match = raw.get("match", "*")
    if not isinstance(match, str) or not match:
        check.problem("match", "must be a non-empty glob string such as \"acme/*\"")
    severity = check.choice("severity", SEVERITIES, "error")
    notify = raw.get("notify", [])
    if not isinstance(notify, list) or not all(isinstance(n, str) for n in notify):
        check.problem("notify", "must be a list of notifier names")
        notify = []
    for target in notify:
        if target not in notifier_names:
            known_names = ", ".join(sorted(notifier_names)) or "none configured"
            check.problem("notify", f"unknown notifier {target!r} (known: {known_names})")
    if kind == "burn_rate" and "slo" not in raw:
        check.problem("slo", "is required for burn_rate, e.g. slo = 0.99")
    threshold = (
        check.number("threshold", 1.0, 1.0, 1e9, integer=True) if kind == "stuck"
        else check.number("threshold", 0.2, 0.0, 1.0, high_open=True)
    )
    rule = Rule(
        name=name if isinstance(name, str) else "",
        kind=kind or "error_rate",
        scope=scope or "deployment",
        match=match if isinstance(match, str) else "*",
        window=check.duration("window", DEFAULT_WINDOW.get(kind or "", 600.0), positive=True),
        threshold=threshold,
        min_predictions=int(check.number("min_predictions", 20, 0, 1e9, integer=True)),
        for_=check.duration("for", 0.0),
        keep_firing_for=check.duration("keep_firing_for", 0.0),
        severity=severity or "error",
        notify=tuple(dict.fromkeys(notify)),
        repeat_interval=check.duration("repeat_interval", 4 * 3600.0),
        slo=check.number("slo", 0.99, 0.0, 1.0, low_open=True, high_open=True)
        if kind == "burn_rate" else None,
        burn_windows=_burn_windows(raw.get("windows"), check)
        if kind == "burn_rate" else DEFAULT_BURN_WINDOWS,
        lookback=check.duration("lookback", 86400.0, positive=True),
    )
    if rule.kind == "no_traffic" and rule.lookback <= rule.window:
        check.problem("lookback", "must be longer than window")
    return rule if len(problems) == before else None


def parse_rules(raw: Any, *, notifier_names: set[str], problems: list[str]) -> list[Rule]:
    """The [[rules]] array; every problem is appended as one line, bad rules are dropped."""
    if not isinstance(raw, list):
        problems.append("rules: must be an array of tables ([[rules]])")
        return []
    rules: list[Rule] = []
    seen: set[str] = set()
    for i, item in enumerate(raw):
        label = item.get("name") if isinstance(item, dict) else None
        where = f"rules[{i}]" + (f" ({label})" if isinstance(label, str) else "")
        if not isinstance(item, dict):
            problems.append(f"{where}: must be a table")
            continue
        rule = _parse_rule(item, where, notifier_names, problems)
        if rule is None:
            continue
        if rule.name in seen:
            problems.append(f"{where}: name: {rule.name!r} is used by an earlier rule")
            continue
        seen.add(rule.name)
        rules.append(rule)
    return rules


def parse_inhibit(raw: Any, problems: list[str]) -> dict[str, Any]:
    """The [inhibit] table: `enabled` (default true) lets a firing model alert mute the same
    kind's alerts on that model's deployments and versions."""
    if not isinstance(raw, dict):
        problems.append("inhibit: must be a table")
        return {"enabled": True}
    for key in sorted(set(raw) - {"enabled"}):
        problems.append(f"inhibit: {key}: unknown key (expected enabled)")
    enabled = raw.get("enabled", True)
    if not isinstance(enabled, bool):
        problems.append(f"inhibit: enabled: must be true or false, not {enabled!r}")
        enabled = True
    return {"enabled": enabled}
