"""The evaluate job: windowed counts in, transitions and outbox rows out, in one transaction."""

from __future__ import annotations

import dataclasses
import logging
import threading
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field

import orjson
from sqlalchemy import Engine
from sqlmodel import Session

from hookwatch.alerts.compose import compose, top_errors
from hookwatch.alerts.evaluate import (
    Decision,
    InstanceKey,
    active_inhibitors,
    decide,
    deployments_to_map,
    judge_all,
    needs,
    step_all,
)
from hookwatch.alerts.group import Group
from hookwatch.alerts.grouping import Outbox, load_groups, model_of, write_groups
from hookwatch.alerts.latency import wants as latency_wants
from hookwatch.alerts.notify import route
from hookwatch.alerts.pricing import Pricing
from hookwatch.alerts.rules import ErrorRateRule, RegressionRule, Rule
from hookwatch.alerts.sightings import track
from hookwatch.alerts.spend import usage_windows
from hookwatch.alerts.state import FIRING, OPEN, RESOLVED, AlertState, alert_key
from hookwatch.alerts.store import (
    ModelMap,
    active_silences,
    add_notifications,
    apply_state,
    load_alerts,
    take_lock,
    to_state,
)
from hookwatch.alerts.verdict import Inputs, LineupKey, StuckKey
from hookwatch.storage.percentiles import LatencyCache, histograms
from hookwatch.storage.rates import ScopeKey, multi_window_counts, stuck_counts
from hookwatch.storage.tables import Alert, AlertTransition
from hookwatch.storage.usage import UsageCache, usage
from hookwatch.storage.versions import Lineup, LineupCache, lineups
from hookwatch.storage.window_cache import WindowCache

log = logging.getLogger("hookwatch.alerts")



@dataclass(frozen=True)
class Result:
    now: float
    instances: int
    transitions: int
    notifications: int
    read_seconds: float
    write_seconds: float


@dataclass
class Caches:
    """The closed-bucket caches of one evaluator (outcome counts, latency, billed seconds)."""

    windows: WindowCache = field(default_factory=WindowCache)
    latency: LatencyCache = field(default_factory=LatencyCache)
    usage: UsageCache = field(default_factory=UsageCache)


def read_inputs(engine: Engine, rules: Sequence[Rule], now: float,
                cache: WindowCache | Caches | None = None,
                lineup_cache: LineupCache | None = None,
                pricing: Pricing | None = None) -> Inputs:
    """One short read transaction: the windows' counts (through the cache of closed buckets
    when given, else one scan per resolution), the stuck counts, and the versions side by
    side that regression rules compare (through the lineup cache when given), latency
    histograms and billed seconds (through `Caches` when given)."""
    caches = Caches(windows=cache) if isinstance(cache, WindowCache) else cache
    windows, stuck_params = needs(rules)
    latency_keys, spend_windows = latency_wants(rules), usage_windows(rules)
    stuck: dict[StuckKey, dict[ScopeKey, int]] = {}
    with engine.connect() as conn:
        if not windows:
            counts = {}
        elif caches is not None:
            counts = caches.windows.counts(conn, now=now, windows=windows)
        else:
            counts = multi_window_counts(conn, now=now, windows=windows)
        for scope, (window, lookback) in sorted(stuck_params):
            found = stuck_counts(conn, now=now, older_than=window, since=now - lookback,
                                 scope=scope)
            stuck.setdefault((window, lookback), {}).update(found)
        read = lineup_cache.get if lineup_cache is not None else lineups
        versions: dict[LineupKey, Mapping[str, Lineup]] = {
            (scope, lookback): read(conn, scope=scope, now=now, lookback=lookback)
            for scope, lookback in sorted({(r.scope, r.lookback) for r in rules
                                           if isinstance(r, RegressionRule)})}
        if caches is not None:
            latency = caches.latency.histograms(conn, now=now, wants=latency_keys)
            used = caches.usage.usage(conn, now=now, windows=spend_windows)
        else:
            latency = {(m, w): histograms(conn, now=now, window=w, metric=m)
                       for m, w in latency_keys}
            used = {w: usage(conn, now=now, window=w) for w in spend_windows}
    return Inputs(counts=counts, stuck=stuck, lineups=versions, now=now, latency=latency,
                  usage=used, pricing=pricing or Pricing())


def run_evaluation(
    engine: Engine,
    *,
    rules: Sequence[Rule],
    now: float,
    base_url: str,
    inhibit: bool = True,
    notifiers: Iterable[str] = (),
    cache: WindowCache | Caches | None = None,
    model_map: ModelMap | None = None,
    lineup_cache: LineupCache | None = None,
    pricing: Pricing | None = None,
) -> Result:
    """Evaluate every rule once. Safe to run from several threads, processes or replicas at
    once: the evaluator row lock serialises the decide-and-write part."""
    started = time.perf_counter()
    inputs = read_inputs(engine, rules, now, cache, lineup_cache, pricing)
    configured: set[tuple[str, str]] = {(rule.name, rule.scope) for rule in rules}
    # Judged before the lock, which on SQLite is the write lock every webhook's commit needs
    # (alerts.evaluate.Judged); under it, only what changed meanwhile is judged again.
    with Session(engine) as session:
        judged = judge_all(rules, inputs, _prior(load_alerts(session), configured))
    read_done = time.perf_counter()
    with Session(engine) as session:
        now = take_lock(session, now)
        inputs = dataclasses.replace(inputs, new_errors=track(session, rules, now=now,
                                                              base_url=base_url))
        rows = {(r.rule, r.scope, r.name): r for r in load_alerts(session)}
        prior = _prior(rows.values(), configured)
        steps = step_all(rules, inputs, prior, now, judged)
        active = active_inhibitors(steps, enabled=inhibit)
        need = deployments_to_map(steps, active)
        models = (model_map or ModelMap()).lookup(session, deployments=need, now=now)
        decisions = decide(steps, silences=active_silences(session, now=now), active=active,
                           deployment_models=models, now=now)
        transitions = notifications = 0
        outbox = Outbox()
        for decision in decisions:
            t, n = _write(session, decision, rows, now=now, base_url=base_url, outbox=outbox,
                          models=models)
            transitions += t
            notifications += n
        retired = [r for k, r in rows.items() if k[:2] not in configured and r.state in OPEN]
        # Only the groups this evaluation touches (all of them when an alert is retired: its
        # rule, and so its group key, is gone).
        groups = load_groups(session, None if retired else {e.key for e in outbox.events})
        for row in retired:
            _retire(session, row, now=now, base_url=base_url, outbox=outbox,
                    groups={k: g for k, (_r, g) in groups.items()})
        by_id = {r.id: r for r in rows.values() if r.id is not None}
        notifications += write_groups(session, outbox, by_id, now=now, base_url=base_url,
                                      loaded=groups)
        session.commit()
    return Result(now, len(decisions), transitions + len(retired), notifications,
                  read_done - started, time.perf_counter() - read_done)


def _prior(rows: Iterable[Alert], configured: set[tuple[str, str]]
           ) -> dict[InstanceKey, AlertState]:
    return {(r.rule, r.scope, r.name): to_state(r) for r in rows
            if (r.rule, r.scope) in configured}


def _same_but_value(a: AlertState, b: AlertState) -> bool:
    return a == dataclasses.replace(b, value=a.value)


def _write(
    session: Session, d: Decision, rows: dict[InstanceKey, Alert], *, now: float, base_url: str,
    outbox: Outbox, models: Mapping[str, set[str]],
) -> tuple[int, int]:
    """The decision's state and transition; its notification goes to `outbox` (the groups),
    or, muted, straight to the outbox table as a suppressed row (history)."""
    key = (d.rule.name, d.after.scope, d.after.name)
    row = rows.get(key)
    if row is not None and not d.changed and d.outgoing is None and (
        _same_but_value(d.before, d.after) if d.after.state not in OPEN
        else d.before == d.after and row.summary == d.verdict.summary
    ):
        return 0, 0  # nothing worth a write: a quiet one stays quiet, a firing one unchanged
    if row is None:
        row = Alert(key=alert_key(*key), rule=d.rule.name, rule_kind=d.rule.kind,
                    severity=d.rule.severity, scope=d.after.scope, name=d.after.name,
                    state=d.after.state, since=d.after.since, evaluated_at=now)
        session.add(row)
        rows[key] = row
    apply_state(row, d.after)
    row.rule_kind, row.severity = d.rule.kind, d.rule.severity
    row.threshold = d.rule.alert_threshold()
    row.summary = d.verdict.summary
    if d.verdict.counts is not None:
        row.counts = orjson.dumps(d.verdict.counts.as_dict()).decode()
    if row.id is None or session.is_modified(row):  # an unchanged open alert costs no write
        row.evaluated_at = now
    if row.id is None:
        session.flush()  # the row's id, for the transition and the outbox rows
    transitions = 0
    if d.changed:
        transitions = 1
        note = d.verdict.summary + (f"; {d.after.muted_by}" if d.after.muted_by else "")
        session.add(AlertTransition(alert_id=row.id or 0, at=now, from_state=d.before.state,
                                    to_state=d.after.state, value=d.after.value, note=note))
        log.info("alert %s on %s %s: %s -> %s", d.rule.name, row.scope, row.name,
                 d.before.state, d.after.state)
    channels = route(d.rule)
    if d.outgoing is None or not channels:
        return transitions, 0
    errors = None
    aborted_only = isinstance(d.rule, ErrorRateRule) and "failed" not in d.rule.outcomes
    if d.outgoing.kind in ("trigger", "reminder") and not aborted_only:
        # The failure groups behind it; a rate of aborted or canceled ones has none to show.
        span = d.rule.errors_since()
        errors = top_errors(session, alert=row, since=now - span)
    message = compose(row, kind=d.outgoing.kind, now=now, base_url=base_url, rule=d.rule,
                      errors=errors)
    if d.outgoing.suppressed:
        added = add_notifications(session, alert=row, message=message, notifiers=channels,
                                  suppressed=True, now=now)
        return transitions, len(added)
    outbox.add(row, d.rule, change=d.outgoing.kind, notifiers=channels, message=message,
               model=model_of(row.scope, row.name, models))
    return transitions, 0


def _retire(session: Session, row: Alert, *, now: float, base_url: str, outbox: Outbox,
            groups: Mapping[tuple[str, str], Group]) -> None:
    """An open alert whose rule left the config (or changed scope) resolves; the groups that
    hold it are told."""
    before = row.state
    row.state, row.since, row.resolved_at, row.clear_since = RESOLVED, now, now, None
    row.evaluated_at = now
    session.add(AlertTransition(alert_id=row.id or 0, at=now, from_state=before,
                                to_state=RESOLVED, value=row.value,
                                note="the rule is no longer in the config"))
    if before != FIRING or not row.notified:
        return
    outbox.retire(row, groups, compose(row, kind="resolve", now=now, base_url=base_url))


@dataclass
class Evaluator:
    """The evaluate job, built by create_app: one evaluation at a time in this process, with
    the caches that make the next one cheap. It returns what it decided; the caller wakes
    delivery when notifications were written."""

    engine: Engine
    rules: Sequence[Rule]
    base_url: str
    inhibit: bool = True
    notifiers: Iterable[str] = ()
    cache: Caches = field(default_factory=Caches)
    model_map: ModelMap = field(default_factory=ModelMap)
    lineups: LineupCache = field(default_factory=LineupCache)
    lock: threading.Lock = field(default_factory=threading.Lock)
    pricing: Pricing = field(default_factory=Pricing)

    def evaluate(self, now: float) -> Result:
        with self.lock:
            result = run_evaluation(
                self.engine, rules=self.rules, now=now, base_url=self.base_url,
                inhibit=self.inhibit, notifiers=self.notifiers, cache=self.cache,
                model_map=self.model_map, lineup_cache=self.lineups, pricing=self.pricing,
            )
        if result.transitions or result.notifications:
            log.info("evaluated %d alert instances: %d transitions, %d notifications",
                     result.instances, result.transitions, result.notifications)
        return result
