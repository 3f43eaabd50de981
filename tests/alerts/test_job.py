"""The evaluate job against real databases: states, transitions and outbox rows together."""

from __future__ import annotations

import json
import threading
from pathlib import Path

import pytest
from sqlalchemy import Engine, update
from sqlmodel import Session, col, select

from hookwatch.alerts import job as alert_job
from hookwatch.alerts.job import run_evaluation
from hookwatch.alerts.rules import ErrorRateRule, NoTrafficRule, Rule, StuckRule, default_rules
from hookwatch.config import load_config
from hookwatch.notifiers.message import AlertMessage
from hookwatch.storage.engine import make_engine
from hookwatch.storage.tables import Alert, AlertTransition, Notification, Silence
from tests.alerts.helpers import RATE_RULE, config_text, event, ingest, outcomes
from tests.conftest import ManualClock

BASE_URL = "http://hookwatch.test"
OOM = "CUDA out of memory. Tried to allocate {} GiB (GPU 0; 79.35 GiB total capacity)"


@pytest.fixture
def rules(tmp_path: Path) -> list[Rule]:
    path = tmp_path / "rules.toml"
    path.write_text(config_text(RATE_RULE))
    return list(load_config(path).rules)


def evaluate(engine: Engine, rules: list[Rule], clock: ManualClock, **kw: object) -> None:
    run_evaluation(engine, rules=rules, now=clock.now, base_url=BASE_URL,
                   notifiers={"team", "pager"}, **kw)  # type: ignore[arg-type]


def notifications(engine: Engine) -> list[Notification]:
    with Session(engine) as session:
        return list(session.exec(select(Notification).order_by(col(Notification.id))))


def alerts(engine: Engine) -> dict[tuple[str, str], Alert]:
    with Session(engine) as session:
        return {(a.rule, a.name): a for a in session.exec(select(Alert))}


def failing(engine: Engine, clock: ManualClock, failed: int = 10, succeeded: int = 15) -> None:
    events = [event("failed", at=clock.now, error=OOM.format(f"{i + 1}.50"))
              for i in range(failed)]
    events += [event("succeeded", at=clock.now) for _ in range(succeeded)]
    ingest(engine, clock, events)


def test_fire_remind_resolve_through_the_outbox(
    engine: Engine, rules: list[Rule], clock: ManualClock
) -> None:
    failing(engine, clock)
    evaluate(engine, rules, clock)
    rows = notifications(engine)
    assert [(n.notifier, n.kind, n.state) for n in rows] == [
        ("team", "trigger", "pending"), ("pager", "trigger", "pending")]
    message = AlertMessage.from_json(json.loads(rows[0].payload))
    alert = alerts(engine)[("dep-errors", "acme/sdxl-prod")]
    assert (alert.state, alert.fired_at) == ("firing", clock.now)
    # One group per rule (the default): the group's key, one alert in it.
    assert rows[0].alert_id == alert.id and rows[0].alert_key == message.alert_key
    assert message.group is not None and message.group.label == "rule=dep-errors"
    assert (message.group.total, message.group.entries[0].name) == (1, "acme/sdxl-prod")
    assert (message.kind, message.scope, message.scope_name, message.rule) == (
        "trigger", "deployment", "acme/sdxl-prod", "dep-errors")
    assert message.value == pytest.approx(0.4) and message.threshold == 0.2
    assert message.counts == {"succeeded": 15, "failed": 10, "canceled": 0, "aborted": 0,
                              "other": 0}
    assert [(e.fingerprint, e.count) for e in message.top_errors] == [
        ("CUDA out of memory. Tried to allocate <n> GiB (GPU <n>; <n> GiB total capacity)", 10)]
    assert message.summary.startswith("[FIRING] dep-errors on deployment acme/sdxl-prod: "
                                      "error rate 40% (10 of 25 failed over 10m)")
    assert message.alert_url == f"{BASE_URL}/alerts/{alert.id}"

    clock.advance(15)
    evaluate(engine, rules, clock)
    assert len(notifications(engine)) == 2  # still firing: nothing new
    with Session(engine) as session:  # delivered: a reminder is no longer folded into them
        session.exec(update(Notification).values(state="sent"))  # type: ignore[call-overload]
        session.commit()
    clock.advance(3600)
    failing(engine, clock)
    evaluate(engine, rules, clock)
    assert [n.kind for n in notifications(engine)][2:] == ["reminder", "reminder"]
    with Session(engine) as session:
        session.exec(update(Notification).values(state="sent"))  # type: ignore[call-overload]
        session.commit()

    clock.advance(11 * 60)
    outcomes(engine, clock, succeeded=30)
    evaluate(engine, rules, clock)
    assert [n.kind for n in notifications(engine)][4:] == ["resolve", "resolve"]
    with Session(engine) as session:
        history = [(t.from_state, t.to_state) for t in session.exec(
            select(AlertTransition).order_by(col(AlertTransition.id)))]
    assert history == [("inactive", "firing"), ("firing", "resolved")]


def test_a_failed_write_leaves_no_trace(
    engine: Engine, rules: list[Rule], clock: ManualClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    failing(engine, clock)

    def broken(*_a: object, **_k: object) -> None:
        raise RuntimeError("disk on fire")

    monkeypatch.setattr(alert_job, "write_groups", broken)
    with pytest.raises(RuntimeError):
        evaluate(engine, rules, clock)
    assert alerts(engine) == {} and notifications(engine) == []
    monkeypatch.undo()
    clock.advance(15)
    evaluate(engine, rules, clock)  # the decision is taken again, once
    assert [n.kind for n in notifications(engine)] == ["trigger", "trigger"]


def test_concurrent_evaluators_decide_once(
    engine: Engine, db_url: str, rules: list[Rule], clock: ManualClock
) -> None:
    """Two processes' evaluators (separate engines) at the same moment: one trigger each."""
    failing(engine, clock)
    second = make_engine(db_url)
    barrier = threading.Barrier(4)
    errors: list[BaseException] = []

    def run(target: Engine) -> None:
        try:
            barrier.wait(timeout=10)
            evaluate(target, rules, clock)
        except BaseException as exc:  # reported below
            errors.append(exc)

    threads = [threading.Thread(target=run, args=(e,)) for e in (engine, second) * 2]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    second.dispose()
    assert errors == []
    assert sorted(n.notifier for n in notifications(engine)) == ["pager", "team"]


def test_stuck_with_inhibition_by_the_model(engine: Engine, clock: ManualClock) -> None:
    rules: list[Rule] = [r.model_copy(update={"notify": ("team",)}) for r in default_rules()
                         if isinstance(r, StuckRule)]
    start = clock.now
    ingest(engine, clock, [event("starting", at=start), event("processing", at=start)])
    clock.advance(16 * 60)
    evaluate(engine, rules, clock)
    found = alerts(engine)
    assert found[("model-stuck", "acme/sdxl")].state == "firing"
    dep = found[("deployment-stuck", "acme/sdxl-prod")]
    assert dep.state == "firing" and dep.value == 2
    assert dep.muted_by == "inhibited by model-stuck on model acme/sdxl"
    assert [(n.notifier, n.state) for n in notifications(engine)] == [
        ("team", "suppressed"), ("team", "pending")]
    ingest(engine, clock, [event("succeeded", at=clock.now, prediction_id=p)
                           for p in _pending_ids(engine)])
    evaluate(engine, rules, clock)
    assert {a.state for a in alerts(engine).values()} == {"resolved"}
    # the muted deployment alert never paged, so only the model's resolve goes out
    assert [(n.kind, n.state) for n in notifications(engine)][2:] == [("resolve", "pending")]


def _pending_ids(engine: Engine) -> list[str]:
    from hookwatch.storage.tables import Prediction

    with Session(engine) as session:
        return list(session.exec(select(Prediction.id).where(Prediction.rank < 2)))


def test_no_traffic_from_buckets(engine: Engine, clock: ManualClock) -> None:
    rule = NoTrafficRule(name="quiet", scope="deployment", window=1800.0,
                         lookback=86400.0, notify=("team",))
    outcomes(engine, clock, succeeded=5)
    evaluate(engine, [rule], clock)
    assert alerts(engine) == {}
    clock.advance(31 * 60)
    evaluate(engine, [rule], clock)
    assert alerts(engine)[("quiet", "acme/sdxl-prod")].state == "firing"
    outcomes(engine, clock, succeeded=1)
    evaluate(engine, [rule], clock)
    assert alerts(engine)[("quiet", "acme/sdxl-prod")].state == "resolved"


def test_silence_row_mutes_and_rule_removal_resolves(
    engine: Engine, rules: list[Rule], clock: ManualClock
) -> None:
    with Session(engine) as session:
        session.add(Silence(rule="dep-*", name="acme/*", starts_at=clock.now,
                            ends_at=clock.now + 600, created_by="ana", comment="deploying",
                            created_at=clock.now))
        session.commit()
    failing(engine, clock)
    evaluate(engine, rules, clock)
    assert [n.state for n in notifications(engine)] == ["suppressed", "suppressed"]
    clock.advance(600)
    failing(engine, clock)
    evaluate(engine, rules, clock)
    assert [n.state for n in notifications(engine)][2:] == ["pending", "pending"]
    evaluate(engine, [], clock)  # the rule left the config
    alert = alerts(engine)[("dep-errors", "acme/sdxl-prod")]
    assert alert.state == "resolved"
    assert sorted((n.kind, n.notifier) for n in notifications(engine)[4:]) == [
        ("resolve", "pager"), ("resolve", "team")]


def test_queries_for_the_dashboard(engine: Engine, clock: ManualClock) -> None:
    from hookwatch.alerts.queries import open_alerts, recent_alerts, scope_statuses

    rules = [ErrorRateRule(name="dep", scope="deployment", min_predictions=5),
             ErrorRateRule(name="ver", scope="version", min_predictions=5,
                           for_=300.0),
             ErrorRateRule(name="model", scope="model", min_predictions=5,
                           match="other/*")]
    outcomes(engine, clock, failed=5, deployment="quiet-dep", version=None)
    evaluate(engine, rules, clock)
    clock.advance(3 * 3600)  # quiet-dep has no data since: no verdict, it stays firing
    failing(engine, clock)
    outcomes(engine, clock, succeeded=5, model="other/m", deployment=None, version=None)
    with Session(engine) as session:
        session.add(Silence(name="quiet-*", starts_at=clock.now, ends_at=clock.now + 60,
                            created_by="ana", comment="known", created_at=clock.now))
        session.commit()
    evaluate(engine, rules, clock)
    with Session(engine) as session:
        statuses = scope_statuses(session, now=clock.now)
        assert statuses[("deployment", "acme/sdxl-prod")] == "firing"
        assert statuses[("deployment", "quiet-dep")] == "silenced"  # firing, silenced
        assert statuses[("version", "acme/sdxl:v1")] == "pending"
        assert statuses[("model", "other/m")] == "ok"
        assert statuses[("model", "acme/sdxl")] == "ok"  # no rule matches it: data, no alert
        assert scope_statuses(session, now=clock.now + 7200,
                              scopes=[("model", "other/m")]) == {("model", "other/m"): "no data"}
        assert [(a.rule, a.state) for a in open_alerts(session)] == [
            ("dep", "firing"), ("dep", "firing"), ("ver", "pending")]
        assert len(recent_alerts(session, since=clock.now - 60)) == 3
