"""Alert rules: one pydantic model per [[rules]] kind, the `Rule` union, and the defaults.

Adding a rule kind (say "latency"): write `class LatencyRule(RuleBase)` with
`kind: Literal["latency"] = "latency"` and its own keys (durations as `Duration` or
`PositiveDuration`, numbers with a `number(...)` check so a bad value reads as one line), give it
`windows()`, `describe()` and, if it has them, `message_window()` / `alert_threshold()`, and
add it to `AnyRule` below. That is all the config side needs: `extra="forbid"` rejects unknown
keys, check-config turns pydantic's errors into one line each, `hookwatch config-schema` shows
the new kind, and `KINDS` lists it. A key every kind takes goes on `RuleBase`. Then teach
`alerts/verdict.py` `judge()` to read it. Times are seconds (floats) once checked.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Annotated, Any, ClassVar, Literal, get_args

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    ValidationInfo,
    model_validator,
)

from hookwatch.alerts.duration import (
    Duration,
    PositiveDuration,
    format_duration,
    schema_defaults,
)
from hookwatch.alerts.group import DEFAULT_GROUP_BY, DEFAULT_GROUP_INTERVAL, LABELS
from hookwatch.notifiers.fields import problem, tag_required

ScopeName = Literal["model", "deployment", "version"]
SeverityName = Literal["critical", "error", "warning", "info"]
SCOPES: tuple[str, ...] = get_args(ScopeName)
SEVERITIES: tuple[str, ...] = get_args(SeverityName)
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.:-]{0,99}$")
NAME_RULE = "letters, digits, '_', '.', ':' or '-', at most 100 characters"


@dataclass(frozen=True)
class FileContext:
    """The validation context while reading a config file: the notifier names it defines.

    With a context, durations must be strings ("60s"), never bare numbers."""

    notifiers: frozenset[str] = frozenset()


def one_of(options: tuple[str, ...]) -> BeforeValidator:
    """A choice among `options`, reported as "'x' is not one of a, b, c"."""

    def check(value: Any) -> Any:
        if value not in options:
            raise problem(f"{value!r} is not one of {', '.join(options)}")
        return value

    return BeforeValidator(check)


def number(low: float, high: float, *, integer: bool = False, low_open: bool = False,
           high_open: bool = False) -> BeforeValidator:
    """A number (an integer if `integer`) in a range; put the same range in a Field() so the
    JSON Schema says it too."""

    def check(value: Any) -> Any:
        kinds = (int,) if integer else (int, float)
        if isinstance(value, bool) or not isinstance(value, kinds):
            raise problem(f"must be {'an integer' if integer else 'a number'}, not {value!r}")
        too_low = value <= low if low_open else value < low
        too_high = value >= high if high_open else value > high
        if too_low or too_high:
            lo, hi = ("(" if low_open else "["), (")" if high_open else "]")
            raise problem(f"{value!r} is out of range {lo}{low:g}, {high:g}{hi}")
        return value

    return BeforeValidator(check)


def _name(value: Any) -> Any:
    if not isinstance(value, str) or not _NAME.match(value):
        raise problem(f"is required: {NAME_RULE}")
    return value


def _glob(value: Any) -> Any:
    if not isinstance(value, str) or not value:
        raise problem('must be a non-empty glob string such as "acme/*"')
    return value


def _notify_list(value: Any) -> Any:
    if not isinstance(value, list | tuple) or not all(isinstance(n, str) for n in value):
        raise problem("must be a list of notifier names")
    return tuple(dict.fromkeys(value))


def _known_notifiers(value: tuple[str, ...], info: ValidationInfo) -> tuple[str, ...]:
    if not isinstance(info.context, FileContext):
        return value
    known = info.context.notifiers
    unknown = [n for n in value if n not in known]
    if unknown:
        names = ", ".join(repr(n) for n in unknown)
        listed = ", ".join(sorted(known)) or "none configured"
        plural = "s" if len(unknown) > 1 else ""
        raise problem(f"unknown notifier{plural} {names} (known: {listed})")
    return value


RuleName = Annotated[str, BeforeValidator(_name)]
Scope = Annotated[ScopeName, one_of(SCOPES)]
Severity = Annotated[SeverityName, one_of(SEVERITIES)]
Glob = Annotated[str, BeforeValidator(_glob)]
Notify = Annotated[tuple[str, ...], BeforeValidator(_notify_list),
                   AfterValidator(_known_notifiers)]
MinPredictions = Annotated[int, Field(ge=0), number(0, 1e9, integer=True)]
NoDataName = Literal["keep", "resolve", "alert"]
NO_DATA: tuple[str, ...] = get_args(NoDataName)
OutcomeName = Literal["failed", "canceled", "aborted"]
RATE_OUTCOMES: tuple[str, ...] = get_args(OutcomeName)
MetricName = Literal["queue_time", "predict_time", "total_time"]
METRICS: tuple[str, ...] = get_args(MetricName)


def _outcomes(value: Any) -> Any:
    options = ", ".join(RATE_OUTCOMES)
    if (not isinstance(value, list | tuple) or not value
            or not all(isinstance(v, str) for v in value)):
        raise problem(f'must be a non-empty list drawn from {options}, e.g. ["aborted"]')
    unknown = [v for v in value if v not in RATE_OUTCOMES]
    if unknown:
        raise problem(f"{', '.join(map(repr, unknown))} not among {options} (succeeded is "
                      "the good outcome every rate divides by)")
    if len(set(value)) != len(value):
        raise problem("lists an outcome twice")
    return tuple(value)


def _group_labels(value: Any) -> Any:
    if not isinstance(value, list | tuple) or not all(isinstance(g, str) for g in value):
        raise problem(f"must be a list of labels among {', '.join(LABELS)}")
    unknown = [g for g in value if g not in LABELS]
    if unknown:
        raise problem(f"unknown label {unknown[0]!r} (one of {', '.join(LABELS)})")
    return tuple(dict.fromkeys(value))


GroupBy = Annotated[tuple[str, ...], BeforeValidator(_group_labels)]


def _schema_extra(schema: dict[str, Any]) -> None:
    tag_required("kind")(schema)
    schema_defaults(schema)


class RuleBase(BaseModel):
    """The keys every kind takes. Times in seconds."""

    model_config = ConfigDict(extra="forbid", frozen=True, validate_by_name=True,
                              json_schema_extra=_schema_extra)
    # Extra words check-config adds after "is required" for a missing key.
    hints: ClassVar[dict[str, str]] = {"name": f": {NAME_RULE}",
                                       "scope": f" (one of {', '.join(SCOPES)})"}

    name: RuleName
    scope: Scope
    match: Glob = "*"  # fnmatch glob on the scope's name
    for_: Duration = Field(default=0.0, validation_alias="for")  # must hold this long to fire
    keep_firing_for: Duration = 0.0  # and must clear this long to resolve
    severity: Severity = "error"
    notify: Notify = ()
    repeat_interval: Duration = 4 * 3600.0  # 0: no reminders
    # Labels (alerts.group.LABELS) whose alerts share one notification per channel and
    # interval; without the key: one group per rule (README "Grouping").
    group_by: GroupBy = DEFAULT_GROUP_BY
    group_interval: PositiveDuration = DEFAULT_GROUP_INTERVAL
    # What "no verdict" (under min_predictions, an empty window) means for the alert: keep it
    # as it is, treat it as clear, or as a breach. keep: an incident never closes on missing
    # evidence (docs/ml-rules.md, "no_data").
    no_data: Annotated[NoDataName, one_of(NO_DATA)] = "keep"

    def windows(self) -> set[float]:
        """Every window this rule reads outcome counts over."""
        return set()

    def describe(self) -> str:
        """One line for messages and check-config."""
        return f"{self.scope} {self.match!r}"

    def message_window(self) -> float | None:
        """The window a notification quotes ("over 10m")."""
        return None

    def errors_since(self) -> float:
        """How far back a notification's top errors look."""
        return max(self.windows() or {self.message_window() or 0.0})

    def alert_threshold(self) -> float | None:
        """The threshold stored on the alert row, when the kind has one."""
        return None


class ErrorRateRule(RuleBase):
    """bad / (succeeded + failed + the other listed outcomes) over `window`, firing when over
    `threshold`; the default outcomes ["failed"] give failed / (succeeded + failed)."""

    kind: Literal["error_rate"] = "error_rate"
    window: PositiveDuration = 600.0
    threshold: Annotated[float, Field(ge=0, lt=1), number(0, 1, high_open=True)] = 0.2
    min_predictions: MinPredictions = 20  # below this, no verdict: the rule stays quiet
    outcomes: Annotated[tuple[OutcomeName, ...], BeforeValidator(_outcomes)] = ("failed",)

    def windows(self) -> set[float]:
        return {self.window}

    def describe(self) -> str:
        return (f"{super().describe()}: error rate > {self.threshold:.0%} over "
                f"{format_duration(self.window)} (>= {self.min_predictions} predictions)")

    def message_window(self) -> float | None:
        return self.window

    def alert_threshold(self) -> float | None:
        return self.threshold


class BurnWindow(BaseModel):
    """One multiwindow pair: both windows' burn rates must be over `factor`."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    long: PositiveDuration
    short: PositiveDuration
    factor: Annotated[float, Field(gt=0, le=1e6), number(0, 1e6, low_open=True)]

    @model_validator(mode="before")
    @classmethod
    def _table(cls, data: Any) -> Any:
        if not isinstance(data, dict | BurnWindow):
            raise problem("must be a table {long, short, factor}")
        return data

    @model_validator(mode="after")
    def _order(self) -> BurnWindow:
        if self.short >= self.long:
            raise problem("must be shorter than long", key="short")
        return self


# The Google SRE workbook's page-worthy pairs for a 30-day SLO:
# https://sre.google/workbook/alerting-on-slos/#6-multiwindow-multi-burn-rate-alerts
DEFAULT_BURN_WINDOWS = (BurnWindow(long=3600.0, short=300.0, factor=14.4),
                        BurnWindow(long=21600.0, short=1800.0, factor=6.0))


def _pairs(value: Any) -> Any:
    if not isinstance(value, list | tuple) or not value:
        raise problem('must be a non-empty list of {long, short, factor} tables, '
                   'e.g. [{long = "1h", short = "5m", factor = 14.4}]')
    return tuple(value)


class BurnRateRule(RuleBase):
    """An SLO's error budget burning fast over a long and a short window at once."""

    kind: Literal["burn_rate"] = "burn_rate"
    hints: ClassVar[dict[str, str]] = {**RuleBase.hints,
                                       "slo": " for burn_rate, e.g. slo = 0.99"}
    slo: Annotated[float, Field(gt=0, lt=1), number(0, 1, low_open=True, high_open=True)]
    burn_windows: Annotated[tuple[BurnWindow, ...], BeforeValidator(_pairs)] = Field(
        default=DEFAULT_BURN_WINDOWS, validation_alias="windows")
    min_predictions: MinPredictions = 20

    def windows(self) -> set[float]:
        return {w for pair in self.burn_windows for w in (pair.long, pair.short)}

    def describe(self) -> str:
        pairs = ", ".join(f"{p.factor:g}x over {format_duration(p.long)}/"
                          f"{format_duration(p.short)}" for p in self.burn_windows)
        return f"{super().describe()}: SLO {self.slo:.3%} burning {pairs}"

    def message_window(self) -> float | None:
        return max(p.long for p in self.burn_windows)


class StuckRule(RuleBase):
    """At least `threshold` predictions not finished `window` after they were created, among
    those created within `lookback`."""

    kind: Literal["stuck"] = "stuck"
    window: PositiveDuration = 900.0
    threshold: Annotated[int, Field(ge=1), number(1, 1e9, integer=True)] = 1
    lookback: PositiveDuration = 86400.0

    def describe(self) -> str:
        return (f"{super().describe()}: >= {self.threshold:g} predictions not finished after "
                f"{format_duration(self.window)}")

    def message_window(self) -> float | None:
        return self.window

    def alert_threshold(self) -> float | None:
        return float(self.threshold)


class NoTrafficRule(RuleBase):
    """No finished prediction for `window` on a scope that had some within `lookback`."""

    kind: Literal["no_traffic"] = "no_traffic"
    window: PositiveDuration = 3600.0
    lookback: PositiveDuration = 86400.0

    @model_validator(mode="after")
    def _longer(self) -> NoTrafficRule:
        if self.lookback <= self.window:
            raise problem("must be longer than window", key="lookback")
        return self

    def windows(self) -> set[float]:
        return {self.window, self.lookback}

    def describe(self) -> str:
        return f"{super().describe()}: no finished predictions for {format_duration(self.window)}"

    def message_window(self) -> float | None:
        return self.window


Confidence = Annotated[float, Field(gt=0, lt=1), number(0, 1, low_open=True, high_open=True)]
Margin = Annotated[float, Field(ge=0, le=10), number(0, 10)]
DEFAULT_MARGIN = {"error_rate": 0.02, "predict_time": 0.2}


def _within_a_model(value: Any) -> Any:
    if value not in ("model", "deployment"):
        raise problem(f"{value!r}: regression compares versions within a model or a "
                      'deployment: use scope = "model" or "deployment"')
    return value


def _default_margin(data: Any) -> Any:
    """`margin` defaults by metric: two points of error rate, or 20% slower."""
    if isinstance(data, dict) and "margin" not in data:
        metric = data.get("metric", "error_rate")
        return {**data, "margin": DEFAULT_MARGIN.get(metric, 0.02)}
    return data


class RegressionRule(RuleBase):
    """Within each model (or deployment), the newest version by first seen against the one
    before it, on error_rate or median predict_time, with anytime-valid evidence
    (alerts/regression.py, docs/regression.md)."""

    kind: Literal["regression"] = "regression"
    scope: Annotated[Literal["model", "deployment"], BeforeValidator(_within_a_model)]
    metric: Annotated[Literal["error_rate", "predict_time"],
                      one_of(("error_rate", "predict_time"))] = "error_rate"
    confidence: Confidence = 0.99  # fires when the evidence reaches 1 / (1 - confidence)
    margin: Margin = 0.02  # absolute for error_rate, relative for predict_time
    min_predictions: MinPredictions = 20  # on the new version (predict_time: on both)
    lookback: PositiveDuration = 86400.0  # the versions are read over this span

    _margin = model_validator(mode="before")(_default_margin)

    def describe(self) -> str:
        worse = (f"fails {self.margin:.0%} more often" if self.metric == "error_rate"
                 else f"median predict time {self.margin:.0%} slower")
        return (f"{super().describe()}: newest version {worse} than the one before it "
                f"({self.confidence:.0%} confidence, >= {self.min_predictions} predictions)")


class NewErrorRule(RuleBase):
    """An error fingerprint never seen on the scope, or unseen for `quiet_for`, fires once
    (alerts/new_error.py); the alert stays firing `window` after the newest one."""

    kind: Literal["new_error"] = "new_error"
    quiet_for: Duration = 0.0  # 0: only a fingerprint never seen counts as new
    window: PositiveDuration = 3600.0

    def describe(self) -> str:
        again = (f", or unseen for {format_duration(self.quiet_for)}" if self.quiet_for
                 else "")
        return f"{super().describe()}: an error fingerprint never seen on it{again}"


class LatencyRule(RuleBase):
    """The `percentile` of `metric` over `window` (from the latency histograms, within 19%),
    firing while over `threshold`."""

    kind: Literal["latency"] = "latency"
    hints: ClassVar[dict[str, str]] = {**RuleBase.hints,
                                       "threshold": ' for latency: a duration such as "60s"'}
    metric: Annotated[MetricName, one_of(METRICS)] = "queue_time"
    percentile: Annotated[float, Field(ge=50, le=99.9), number(50, 99.9)] = 95.0
    threshold: PositiveDuration
    window: PositiveDuration = 900.0
    min_predictions: MinPredictions = 20

    def describe(self) -> str:
        return (f"{super().describe()}: {self.metric.replace('_', ' ')} p{self.percentile:g} > "
                f"{format_duration(self.threshold)} over {format_duration(self.window)} "
                f"(>= {self.min_predictions} predictions)")

    def message_window(self) -> float | None:
        return self.window

    def alert_threshold(self) -> float | None:
        return self.threshold


class SpendRule(RuleBase):
    """Dollars spent over `window` (predict time x the hardware's price, [pricing]), firing
    while over `threshold`. Never judged for a scope with no hardware."""

    kind: Literal["spend"] = "spend"
    hints: ClassVar[dict[str, str]] = {**RuleBase.hints,
                                       "threshold": " for spend: US dollars, e.g. 25.0"}
    threshold: Annotated[float, Field(gt=0, le=1e9), number(0, 1e9, low_open=True)]
    window: PositiveDuration = 3600.0
    min_predictions: MinPredictions = 0  # $0 over an empty window is a verdict: clear

    def describe(self) -> str:
        return (f"{super().describe()}: spend > ${self.threshold:,.2f} over "
                f"{format_duration(self.window)}")

    def message_window(self) -> float | None:
        return self.window

    def alert_threshold(self) -> float | None:
        return self.threshold


# Every kind; a new one is one model above and one member here.
AnyRule = (ErrorRateRule | BurnRateRule | StuckRule | NoTrafficRule | RegressionRule
           | NewErrorRule | LatencyRule | SpendRule)
Rule = Annotated[AnyRule, Field(discriminator="kind")]
RULE_KINDS: dict[str, type[RuleBase]] = {
    m.model_fields["kind"].default: m for m in get_args(AnyRule)
}
KINDS: tuple[str, ...] = tuple(RULE_KINDS)


def _bool(value: Any) -> Any:
    if not isinstance(value, bool):
        raise problem(f"must be true or false, not {value!r}")
    return value


class Inhibit(BaseModel):
    """[inhibit]: `enabled` lets a firing model alert mute the same kind's alerts on that
    model's deployments and versions."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    enabled: Annotated[bool, BeforeValidator(_bool)] = True


def default_rules(notify: Sequence[str] = ()) -> list[AnyRule]:
    """Used when the config has no [[rules]]: a fifth of predictions failing, stuck ones, or
    a queue-time p95 over a minute (cold boots; Replicate's E6716 "Timeout Starting
    Prediction").

    They notify every configured notifier, so a config with channels and no rules still pages.
    """
    to = tuple(notify)
    return [
        ErrorRateRule(name="deployment-error-rate", scope="deployment", window=600.0,
                      threshold=0.2, min_predictions=20, severity="error", notify=to),
        ErrorRateRule(name="model-error-rate", scope="model", window=600.0, threshold=0.2,
                      min_predictions=20, severity="error", notify=to),
        StuckRule(name="deployment-stuck", scope="deployment", window=900.0, threshold=1,
                  severity="warning", notify=to),
        StuckRule(name="model-stuck", scope="model", window=900.0, threshold=1,
                  severity="warning", notify=to),
        LatencyRule(name="deployment-queue-time", scope="deployment", metric="queue_time",
                    percentile=95.0, window=300.0, threshold=60.0, min_predictions=20,
                    severity="warning", notify=to),
        LatencyRule(name="model-queue-time", scope="model", metric="queue_time",
                    percentile=95.0, window=300.0, threshold=60.0, min_predictions=20,
                    severity="warning", notify=to),
    ]

