"""Pure evaluation: (rules, windowed counts, prior alert states, now) -> decisions.

Two steps, because inhibition needs one fact from storage (which model a deployment serves)
that is only worth reading when a model alert fires: `step_all` runs the state machines,
`decide` applies silences, inhibition and the notification bookkeeping.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from fnmatch import fnmatchcase

from hookwatch.alerts.inhibit import Inhibitors, inhibited_by, inhibitors, models_needed
from hookwatch.alerts.notify import Outgoing, plan
from hookwatch.alerts.rules import NewErrorRule, Rule, StuckRule
from hookwatch.alerts.silence import SilenceLike, silenced_by
from hookwatch.alerts.state import FIRING, OPEN, AlertState, step
from hookwatch.alerts.verdict import Inputs, StuckKey, Verdict, judge

InstanceKey = tuple[str, str, str]  # rule, scope, name
NO_DATA_BREACH: dict[str, bool | None] = {"keep": None, "resolve": False, "alert": True}
"""What a rule's `no_data` makes of "no verdict" (None leaves the alert as it is)."""


def needs(rules: Iterable[Rule]) -> tuple[set[float], set[tuple[str, StuckKey]]]:
    """The count windows and the (scope, stuck parameters) the rules read."""
    windows: set[float] = set()
    stuck: set[tuple[str, StuckKey]] = set()
    for rule in rules:
        windows |= rule.windows()
        if isinstance(rule, StuckRule):
            stuck.add((rule.scope, (rule.window, rule.lookback)))
    return windows, stuck


@dataclass(frozen=True)
class Step:
    rule: Rule
    before: AlertState
    after: AlertState
    verdict: Verdict


@dataclass(frozen=True)
class Decision:
    rule: Rule
    before: AlertState
    after: AlertState
    verdict: Verdict
    outgoing: Outgoing | None

    @property
    def changed(self) -> bool:
        return (self.before.state, self.before.episode) != (self.after.state, self.after.episode)


RuleKey = tuple[str, str]  # rule name, scope


@dataclass(frozen=True)
class Judged:
    """Verdicts reached before the evaluator's lock is taken: judging every name of every rule
    is the costly part of an evaluation (100-340 ms over 40,000 scopes), and on SQLite the lock
    is the database's write lock, so webhooks waited that long for their commit
    (bench/bench_dashboard.py --serve). Under the lock, `step_all` judges only what changed
    since: names that gained a stored state, and new_error's fresh appearances."""

    kept: dict[RuleKey, dict[str, Verdict]]  # breaches, and instances that had a state
    seen: dict[RuleKey, set[str]]  # every name judged


def _names(rule: Rule, names: Iterable[str]) -> set[str]:
    return set(names) if rule.match == "*" else {n for n in names if fnmatchcase(n, rule.match)}


def _prior_names(rule: Rule, prior: Mapping[InstanceKey, AlertState]) -> set[str]:
    return {name for (r, scope, name) in prior if r == rule.name and scope == rule.scope}


def judge_all(rules: Sequence[Rule], inputs: Inputs, prior: Mapping[InstanceKey, AlertState]
              ) -> Judged:
    """Every rule's verdict on every name with data or a state in `prior`. new_error rules
    are left out: their input (the sightings) is read under the lock."""
    kept: dict[RuleKey, dict[str, Verdict]] = {}
    seen: dict[RuleKey, set[str]] = {}
    for rule in rules:
        if isinstance(rule, NewErrorRule):
            continue
        had = _prior_names(rule, prior)
        names = _names(rule, inputs.names(rule.scope)) | had
        verdicts: dict[str, Verdict] = {}
        for name in names:
            verdict = no_data(rule, judge(rule, (rule.scope, name), inputs))
            if verdict.breach or name in had:
                verdicts[name] = verdict
        kept[(rule.name, rule.scope)] = verdicts
        seen[(rule.name, rule.scope)] = names
    return Judged(kept, seen)


def _fresh_names(inputs: Inputs, scope: str) -> set[str]:
    return {name for errors in inputs.new_errors.values() for s, name in errors.fresh
            if s == scope}


def step_all(
    rules: Sequence[Rule],
    inputs: Inputs,
    prior: Mapping[InstanceKey, AlertState],
    now: float,
    judged: Judged | None = None,
) -> list[Step]:
    """Every instance with data or a stored state; instances that stay inactive are skipped.

    `judged`: verdicts from `judge_all` on these inputs, but for new_error's fresh
    appearances (the only input read after it), and a `prior` read earlier."""
    steps: list[Step] = []
    for rule in rules:
        key = (rule.name, rule.scope)
        had = _prior_names(rule, prior)
        if judged is None or key not in judged.seen:
            verdicts: dict[str, Verdict] = {}
            names = _names(rule, inputs.names(rule.scope)) | had
        else:
            verdicts = judged.kept[key]
            # A name judged quiet and without a state then, without one now, stays skipped.
            names = set(verdicts) | had | (_names(rule, _fresh_names(inputs, rule.scope))
                                           - judged.seen[key])
        for name in sorted(names):
            known = prior.get((rule.name, rule.scope, name))
            verdict = verdicts.get(name)
            if verdict is None:
                verdict = no_data(rule, judge(rule, (rule.scope, name), inputs))
            if known is None and not verdict.breach:
                continue  # a quiet instance with no history needs no state
            before = known or AlertState(rule.name, rule.scope, name, since=now)
            after = step(before, verdict.breach, for_=rule.for_,
                         keep_firing_for=rule.keep_firing_for, now=now, value=verdict.value)
            after = renew(before, after, verdict.renew_after, now=now)
            steps.append(Step(rule, before, after, verdict))
    return steps


def renew(before: AlertState, after: AlertState, news_at: float | None, *, now: float
          ) -> AlertState:
    """A firing new_error alert that learns of a fingerprint newer than its trigger starts a
    new episode, so that fingerprint is announced too (each new error fires once)."""
    if (news_at is None or before.state != FIRING or after.state != FIRING
            or before.fired_at is None or news_at <= before.fired_at):
        return after
    return dataclasses.replace(after, episode=after.episode + 1, since=now, fired_at=now,
                               clear_since=None, notified=False, last_notified_at=None,
                               acked_by=None)


def no_data(rule: Rule, verdict: Verdict) -> Verdict:
    """"No verdict" as the rule's `no_data` says: kept (None), clear, or a breach."""
    if verdict.breach is not None or rule.no_data == "keep":
        return verdict
    breach = NO_DATA_BREACH[rule.no_data]
    text = verdict.describe
    how = "treated as clear" if breach is False else "treated as a breach"
    return dataclasses.replace(verdict, breach=breach,
                               describe=lambda: f"{text()} (no_data = {rule.no_data}: {how})")


def active_inhibitors(steps: Iterable[Step], *, enabled: bool) -> Inhibitors:
    if not enabled:
        return {}
    return inhibitors((s.rule.kind, s.after.scope, s.after.name, s.rule.name)
                      for s in steps if s.after.state == FIRING)


def deployments_to_map(steps: Iterable[Step], active: Inhibitors) -> set[str]:
    """Deployments whose model `decide` needs (empty unless a model alert fires)."""
    return models_needed(((s.rule.kind, (s.after.scope, s.after.name)) for s in steps
                          if s.after.state in OPEN), active)


def decide(
    steps: Iterable[Step],
    *,
    silences: Sequence[SilenceLike],
    active: Inhibitors,
    deployment_models: Mapping[str, set[str]],
    now: float,
) -> list[Decision]:
    decisions: list[Decision] = []
    for s in steps:
        muted: str | None = None
        if s.after.state in OPEN:
            silence = silenced_by(silences, rule=s.rule.name, scope=s.after.scope,
                                  name=s.after.name, now=now)
            if silence is not None:
                muted = f"silence {silence.id}"
            else:
                muted = inhibited_by(s.rule.kind, (s.after.scope, s.after.name), active,
                                     deployment_models)
        after, outgoing = plan(s.rule, s.before, dataclasses.replace(s.after, muted_by=muted),
                               now)
        decisions.append(Decision(s.rule, s.before, after, s.verdict, outgoing))
    return decisions
