"""The pure evaluation: state machine, verdicts, silences, inhibition, repeat and acknowledge."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass

import pytest

from hookwatch.alerts.evaluate import (
    Decision,
    InstanceKey,
    Step,
    active_inhibitors,
    decide,
    deployments_to_map,
    judge_all,
    step_all,
)
from hookwatch.alerts.new_error import NewErrors, Sighting
from hookwatch.alerts.rules import (
    BurnRateRule,
    BurnWindow,
    ErrorRateRule,
    NewErrorRule,
    NoTrafficRule,
    Rule,
    StuckRule,
)
from hookwatch.alerts.state import FIRING, INACTIVE, PENDING, RESOLVED, AlertState
from hookwatch.alerts.verdict import Inputs, judge
from hookwatch.storage.rates import Counts, ScopeKey

T0 = 1_795_000_000.0
DEP = ("deployment", "acme/sdxl-prod")


def rate_rule(**overrides: object) -> Rule:
    values: dict[str, object] = {
        "name": "dep-errors", "kind": "error_rate", "scope": "deployment", "window": 600.0,
        "threshold": 0.2, "min_predictions": 20, "notify": ("team",),
        "repeat_interval": 3600.0,
    }
    values.update(overrides)
    return ErrorRateRule(**values)  # type: ignore[arg-type]


def counts(failed: int, succeeded: int) -> Counts:
    return Counts(succeeded=succeeded, failed=failed)


@dataclass
class FakeSilence:
    id: int | None
    rule: str
    scope: str
    name: str
    starts_at: float
    ends_at: float


class Driver:
    """Runs evaluations in sequence, feeding each one's states to the next, like the job."""

    def __init__(self, rules: list[Rule], *, inhibit: bool = True) -> None:
        self.rules = rules
        self.inhibit = inhibit
        self.states: dict[InstanceKey, AlertState] = {}
        self.sent: list[tuple[float, str, str, bool]] = []  # at, name, kind, suppressed
        self.transitions: list[tuple[float, str, str, str]] = []  # at, name, from, to
        self.silences: list[FakeSilence] = []
        self.models: dict[str, set[str]] = {}

    def run(self, now: float, inputs: Inputs) -> list[Decision]:
        # As the job does: judged first (outside the lock), then stepped.
        steps = step_all(self.rules, inputs, self.states, now,
                         judge_all(self.rules, inputs, self.states))
        active = active_inhibitors(steps, enabled=self.inhibit)
        wanted = deployments_to_map(steps, active)
        models = {d: self.models.get(d, set()) for d in wanted}
        decisions = decide(steps, silences=self.silences, active=active,
                           deployment_models=models, now=now)
        for d in decisions:
            self.states[(d.rule.name, d.after.scope, d.after.name)] = d.after
            if d.changed:
                self.transitions.append((now, d.after.name, d.before.state, d.after.state))
            if d.outgoing:
                self.sent.append((now, d.after.name, d.outgoing.kind, d.outgoing.suppressed))
        return decisions

    def state(self, rule: str, key: ScopeKey = DEP) -> str:
        found = self.states.get((rule, *key))
        return found.state if found else INACTIVE

    def kinds(self, suppressed: bool = False) -> list[str]:
        return [k for _, _, k, s in self.sent if s == suppressed]


def rate_inputs(window: float, values: Mapping[ScopeKey, Counts]) -> Inputs:
    return Inputs(counts={window: dict(values)})


def test_for_and_keep_firing_for() -> None:
    rule = rate_rule(for_=60.0, keep_firing_for=120.0)
    drive = Driver([rule])
    bad, good = rate_inputs(600, {DEP: counts(10, 20)}), rate_inputs(600, {DEP: counts(0, 30)})
    drive.run(T0, bad)
    assert drive.state("dep-errors") == PENDING and drive.sent == []
    drive.run(T0 + 45, bad)
    assert drive.state("dep-errors") == PENDING  # held 45 s of the 60 s `for`
    drive.run(T0 + 60, bad)
    assert drive.state("dep-errors") == FIRING and drive.kinds() == ["trigger"]
    drive.run(T0 + 75, good)
    drive.run(T0 + 150, good)
    assert drive.state("dep-errors") == FIRING  # clear for 75 s of the 120 s
    drive.run(T0 + 195, good)
    assert drive.state("dep-errors") == RESOLVED and drive.kinds() == ["trigger", "resolve"]
    assert [t[2:] for t in drive.transitions] == [
        (INACTIVE, PENDING), (PENDING, FIRING), (FIRING, RESOLVED)
    ]


def test_pending_that_clears_never_fires() -> None:
    drive = Driver([rate_rule(for_=60.0)])
    drive.run(T0, rate_inputs(600, {DEP: counts(10, 20)}))
    drive.run(T0 + 30, rate_inputs(600, {DEP: counts(1, 30)}))
    drive.run(T0 + 90, rate_inputs(600, {DEP: counts(10, 20)}))
    assert drive.state("dep-errors") == PENDING and drive.sent == []


def test_three_failures_of_four_under_min_predictions_stay_quiet() -> None:
    rule = rate_rule(min_predictions=20)
    verdict = judge(rule, DEP, rate_inputs(600, {DEP: counts(3, 1)}))
    assert verdict.breach is None and "no verdict" in verdict.summary
    drive = Driver([rule])
    for i in range(10):
        drive.run(T0 + 15 * i, rate_inputs(600, {DEP: counts(3, 1)}))
    assert drive.state("dep-errors") == INACTIVE and drive.sent == [] and drive.transitions == []
    # the same rate over enough predictions does fire
    drive.run(T0 + 200, rate_inputs(600, {DEP: counts(15, 5)}))
    assert drive.state("dep-errors") == FIRING


def test_canceled_does_not_count_as_failure() -> None:
    rule = rate_rule(min_predictions=1)
    verdict = judge(rule, DEP, rate_inputs(600, {DEP: Counts(succeeded=9, failed=1,
                                                              canceled=50)}))
    assert verdict.breach is False and verdict.value == pytest.approx(0.1)


def test_a_flapping_rate_does_not_flap_the_alert() -> None:
    drive = Driver([rate_rule(for_=30.0, keep_firing_for=120.0)])
    above, below = counts(8, 22), counts(4, 26)  # 27% and 13% around a 20% threshold
    drive.run(T0, rate_inputs(600, {DEP: above}))
    drive.run(T0 + 30, rate_inputs(600, {DEP: above}))
    assert drive.state("dep-errors") == FIRING
    for i in range(2, 40):  # ten minutes of flapping every 15 s
        drive.run(T0 + 15 * i, rate_inputs(600, {DEP: below if i % 2 else above}))
    assert drive.state("dep-errors") == FIRING
    assert drive.kinds() == ["trigger"]
    assert len(drive.transitions) == 2  # inactive -> pending -> firing, nothing since


def test_no_verdict_holds_a_firing_alert() -> None:
    drive = Driver([rate_rule(keep_firing_for=0.0)])
    drive.run(T0, rate_inputs(600, {DEP: counts(20, 5)}))
    drive.run(T0 + 60, rate_inputs(600, {DEP: counts(3, 1)}))  # too few to judge
    assert drive.state("dep-errors") == FIRING
    drive.run(T0 + 120, rate_inputs(600, {DEP: counts(0, 25)}))
    assert drive.state("dep-errors") == RESOLVED


def burn_inputs(values: Mapping[int, Counts]) -> Inputs:
    return Inputs(counts={float(w): {DEP: c} for w, c in values.items()})


def test_burn_rate_needs_both_windows_of_a_pair() -> None:
    rule = BurnRateRule(name="slo", scope="deployment", slo=0.99,
                        min_predictions=10)
    assert rule.burn_windows == (BurnWindow(long=3600, short=300, factor=14.4),
                                 BurnWindow(long=21600, short=1800, factor=6.0))
    hot, warm, cold = counts(20, 80), counts(8, 92), counts(0, 100)  # burn 20x, 8x, 0x
    cases = [
        ({3600: hot, 300: hot, 21600: cold, 1800: cold}, True),   # fast pair
        ({3600: hot, 300: cold, 21600: cold, 1800: cold}, False),  # over, but not now
        ({3600: cold, 300: hot, 21600: cold, 1800: cold}, False),  # a blip only
        ({3600: warm, 300: warm, 21600: warm, 1800: warm}, True),  # slow pair (8x > 6x)
        ({3600: warm, 300: warm, 21600: warm, 1800: cold}, False),
    ]
    for values, expected in cases:
        verdict = judge(rule, DEP, burn_inputs(values))
        assert verdict.breach is expected, (values, verdict)
    few = judge(rule, DEP, burn_inputs({3600: counts(3, 2), 300: counts(3, 2),
                                        21600: counts(3, 2), 1800: counts(3, 2)}))
    assert few.breach is None


def test_stuck_and_no_traffic() -> None:
    stuck = StuckRule(name="stuck", scope="deployment", window=900.0, threshold=2)
    quiet = NoTrafficRule(name="quiet", scope="deployment", window=1800.0,
                          lookback=86400.0)
    drive = Driver([stuck, quiet])
    key = (900.0, 86400.0)
    busy = {1800.0: {DEP: counts(0, 5)}, 86400.0: {DEP: counts(0, 50)}}
    drive.run(T0, Inputs(counts=busy, stuck={key: {DEP: 1}}))
    assert drive.state("stuck") == INACTIVE and drive.state("quiet") == INACTIVE
    silent = {86400.0: {DEP: counts(0, 50)}}
    decisions = drive.run(T0 + 60, Inputs(counts=silent, stuck={key: {DEP: 2}}))
    assert drive.state("stuck") == FIRING and drive.state("quiet") == FIRING
    assert {d.verdict.summary for d in decisions} == {
        "2 predictions not finished after 15m",
        "no finished predictions for 30m (50 in the last 1d)",
    }
    # a scope that never had traffic gets no verdict, not an alert
    never = ("deployment", "never-used")
    assert judge(quiet, never, Inputs(counts={1800.0: {}, 86400.0: {}})).breach is None
    drive.run(T0 + 120, Inputs(counts=busy, stuck={key: {}}))
    assert drive.state("stuck") == RESOLVED and drive.state("quiet") == RESOLVED


def test_silence_suppresses_then_lets_the_trigger_through() -> None:
    drive = Driver([rate_rule()])
    drive.silences.append(FakeSilence(7, "dep-*", "*", "acme/*", T0 - 10, T0 + 100))
    bad = rate_inputs(600, {DEP: counts(10, 20)})
    decisions = drive.run(T0, bad)
    assert decisions[0].after.muted_by == "silence 7"
    assert drive.sent == [(T0, "acme/sdxl-prod", "trigger", True)]
    drive.run(T0 + 50, bad)
    assert len(drive.sent) == 1  # nothing while silenced, not even suppressed reminders
    drive.run(T0 + 100, bad)  # the silence ended (ends_at is exclusive)
    assert drive.sent[-1] == (T0 + 100, "acme/sdxl-prod", "trigger", False)


@pytest.mark.parametrize(
    ("rule", "scope", "name", "muted"),
    [
        ("dep-*", "*", "acme/*", True),
        ("dep-errors", "deployment", "acme/sdxl-prod", True),
        ("other", "*", "*", False),
        ("*", "model", "*", False),
        ("*", "*", "beta/*", False),
    ],
)
def test_silence_matchers(rule: str, scope: str, name: str, muted: bool) -> None:
    drive = Driver([rate_rule()])
    drive.silences.append(FakeSilence(1, rule, scope, name, T0, T0 + 60))
    drive.run(T0, rate_inputs(600, {DEP: counts(10, 20)}))
    assert drive.sent[0][3] is muted


def test_model_alert_inhibits_its_deployments_and_versions() -> None:
    model_rule = rate_rule(name="model-errors", scope="model")
    dep_rule = rate_rule()
    ver_rule = rate_rule(name="version-errors", scope="version")
    stuck_rule = StuckRule(name="dep-stuck", scope="deployment", window=900.0,
                           threshold=1, notify=("team",))
    drive = Driver([model_rule, dep_rule, ver_rule, stuck_rule])
    drive.models = {"acme/sdxl-prod": {"acme/sdxl"}}
    bad = counts(10, 20)
    other = ("deployment", "beta/llm-prod")
    inputs = Inputs(counts={600.0: {("model", "acme/sdxl"): bad, DEP: bad, other: bad,
                                    ("version", "acme/sdxl:v1"): bad}},
                    stuck={(900.0, 86400.0): {DEP: 3}})
    decisions = {(d.rule.name, d.after.name): d for d in drive.run(T0, inputs)}
    assert decisions[("model-errors", "acme/sdxl")].outgoing.suppressed is False  # type: ignore[union-attr]
    muted = decisions[("dep-errors", "acme/sdxl-prod")]
    assert muted.after.muted_by == "inhibited by model-errors on model acme/sdxl"
    assert muted.outgoing is not None and muted.outgoing.suppressed
    assert decisions[("version-errors", "acme/sdxl:v1")].after.muted_by is not None
    assert decisions[("dep-errors", "beta/llm-prod")].after.muted_by is None  # another model
    assert decisions[("dep-stuck", "acme/sdxl-prod")].after.muted_by is None  # another kind
    # switched off by [inhibit] enabled = false
    plain = Driver([model_rule, dep_rule], inhibit=False)
    plain.models = drive.models
    assert all(d.after.muted_by is None for d in plain.run(T0, inputs))


def test_reminders_every_repeat_interval_until_acknowledged() -> None:
    drive = Driver([rate_rule(repeat_interval=3600.0)])
    bad = rate_inputs(600, {DEP: counts(10, 20)})
    for minutes in range(0, 150, 15):
        drive.run(T0 + 60 * minutes, bad)
    assert [(t - T0, k) for t, _, k, _ in drive.sent] == [
        (0, "trigger"), (3600, "reminder"), (7200, "reminder")
    ]
    key = ("dep-errors", *DEP)
    drive.states[key] = dataclasses.replace(drive.states[key], acked_by="ana")
    for minutes in range(150, 400, 15):
        drive.run(T0 + 60 * minutes, bad)
    assert len(drive.sent) == 3  # acknowledged: no more reminders
    drive.run(T0 + 400 * 60, rate_inputs(600, {DEP: counts(0, 30)}))
    assert drive.kinds()[-1] == "resolve"
    # a new episode forgets the acknowledgement
    drive.run(T0 + 401 * 60, bad)
    assert drive.states[key].acked_by is None and drive.kinds()[-1] == "trigger"


def test_no_reminders_when_repeat_interval_is_zero() -> None:
    drive = Driver([rate_rule(repeat_interval=0.0)])
    for hours in range(5):
        drive.run(T0 + 3600 * hours, rate_inputs(600, {DEP: counts(10, 20)}))
    assert drive.kinds() == ["trigger"]


def test_a_muted_alert_that_never_paged_resolves_silently() -> None:
    drive = Driver([rate_rule()])
    drive.silences.append(FakeSilence(1, "*", "*", "*", T0, T0 + 3600))
    drive.run(T0, rate_inputs(600, {DEP: counts(10, 20)}))
    drive.run(T0 + 60, rate_inputs(600, {DEP: counts(0, 30)}))
    assert drive.state("dep-errors") == RESOLVED
    assert drive.sent == [(T0, "acme/sdxl-prod", "trigger", True)]


def test_match_glob_limits_the_scopes() -> None:
    drive = Driver([rate_rule(match="acme/*")])
    other = ("deployment", "beta/llm")
    drive.run(T0, rate_inputs(600, {DEP: counts(10, 20), other: counts(10, 20)}))
    assert drive.state("dep-errors") == FIRING
    assert drive.state("dep-errors", other) == INACTIVE


def test_verdicts_judged_before_the_lock_step_as_if_judged_under_it() -> None:
    """What may change between judge_all and the locked step_all: an instance gains a state
    (another evaluation, an acknowledgement), one loses it, new_error's sightings arrive."""
    rules: list[Rule] = [
        rate_rule(),
        rate_rule(name="quiet-alerts", no_data="alert", match="acme/*"),
        NewErrorRule(name="news", kind="new_error", scope="deployment", notify=("team",)),
    ]
    values = {("deployment", f"acme/m{i}"): counts(failed=i % 3 * 10, succeeded=20)
              for i in range(30)}
    inputs = rate_inputs(600.0, values)
    earlier = {("dep-errors", "deployment", "acme/m1"): AlertState(
        "dep-errors", "deployment", "acme/m1", state=FIRING, since=T0 - 600)}
    judged = judge_all(rules, inputs, earlier)
    assert ("news", "deployment") not in judged.seen  # judged under the lock, with sightings

    now_prior = {
        ("dep-errors", "deployment", "acme/m0"): AlertState(  # gained a state meanwhile
            "dep-errors", "deployment", "acme/m0", state=PENDING, since=T0 - 30),
        ("dep-errors", "deployment", "gone/x"): AlertState(  # a name with no data at all
            "dep-errors", "deployment", "gone/x", state=FIRING, since=T0 - 900),
    }
    sighting = Sighting(scope="deployment", name="acme/new", fingerprint="CUDA out of memory",
                        first_seen=T0 - 5, appeared_at=T0 - 5, last_seen=T0 - 5, count=1,
                        prediction_id="p1", version=None, example="CUDA out of memory")
    locked = dataclasses.replace(inputs, new_errors={
        "news": NewErrors(fresh={("deployment", "acme/new"): (sighting,)})})

    def shape(steps: list[Step]) -> list[tuple[str, str, str, str, object]]:
        return [(s.rule.name, s.after.name, s.before.state, s.after.state, s.verdict.value)
                for s in steps]

    assert shape(step_all(rules, locked, now_prior, T0, judged)) == \
        shape(step_all(rules, locked, now_prior, T0))
    names = {s.after.name for s in step_all(rules, locked, now_prior, T0, judged)
             if s.rule.name == "dep-errors"}
    assert {"acme/m0", "gone/x", "acme/m1"} <= names
    # Seen only in the sightings: judged under the lock by every rule that matches it.
    assert {(s.rule.name, s.after.state) for s in step_all(rules, locked, now_prior, T0, judged)
            if s.after.name == "acme/new"} == {("news", FIRING), ("quiet-alerts", FIRING)}
