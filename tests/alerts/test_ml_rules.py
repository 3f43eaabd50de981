"""Latency, spend, aborted-rate and no_data rules through the evaluate job, on an injected clock
over real SQLite and PostgreSQL: each fires, stays quiet below min_predictions, resolves."""

from __future__ import annotations

import json

import pytest
from sqlalchemy import Engine
from sqlmodel import Session, col, select

from hookwatch.alerts.job import Caches, run_evaluation
from hookwatch.alerts.pricing import Pricing
from hookwatch.alerts.rules import (
    AnyRule,
    ErrorRateRule,
    LatencyRule,
    SpendRule,
    default_rules,
)
from hookwatch.notifiers.message import AlertMessage
from hookwatch.storage.percentiles import RELATIVE_ERROR
from hookwatch.storage.tables import Alert, Notification
from tests.alerts.helpers import event, ingest
from tests.conftest import ManualClock
from tests.storage.test_percentiles_usage import finished

BASE_URL = "http://hookwatch.test"
A100 = Pricing(scopes={"acme/sdxl*": "gpu-a100-large"})


def evaluate(engine: Engine, rules: list[AnyRule], clock: ManualClock, *,
             cache: Caches | None = None, pricing: Pricing | None = None) -> None:
    run_evaluation(engine, rules=rules, now=clock.now, base_url=BASE_URL, notifiers={"team"},
                   cache=cache, pricing=pricing)


def alerts(engine: Engine) -> dict[tuple[str, str], Alert]:
    with Session(engine) as session:
        return {(a.rule, a.name): a for a in session.exec(select(Alert))}


def state(engine: Engine, rule: str, name: str = "acme/sdxl-prod") -> str | None:
    found = alerts(engine).get((rule, name))
    return found.state if found is not None else None


def messages(engine: Engine) -> list[AlertMessage]:
    with Session(engine) as session:
        rows = session.exec(select(Notification).order_by(col(Notification.id)))
        return [AlertMessage.from_json(json.loads(n.payload)) for n in rows]


def queued(engine: Engine, clock: ManualClock, n: int, queue: float, *,
           metric_predict: float = 1.0) -> None:
    ingest(engine, clock, [finished("succeeded", at=clock.now, queue=queue,
                                    predict=metric_predict) for _ in range(n)])


COLD = LatencyRule(name="cold-boots", scope="deployment", metric="queue_time",
            percentile=95.0, threshold=60.0, window=900.0, min_predictions=20, notify=("team",))


@pytest.mark.parametrize("cached", [True, False])
def test_latency_fires_stays_quiet_and_resolves(engine: Engine, clock: ManualClock,
                                                cached: bool) -> None:
    cache = Caches() if cached else None
    queued(engine, clock, 10, queue=92.0)
    evaluate(engine, [COLD], clock, cache=cache)
    assert state(engine, "cold-boots") is None  # 10 predictions, under min_predictions

    clock.advance(30)
    queued(engine, clock, 31, queue=92.0)
    evaluate(engine, [COLD], clock, cache=cache)
    alert = alerts(engine)[("cold-boots", "acme/sdxl-prod")]
    assert alert.state == "firing" and alert.threshold == 60.0
    assert alert.value is not None and abs(alert.value - 92.0) <= RELATIVE_ERROR * 92.0
    [message] = messages(engine)
    assert message.rule_kind == "latency" and message.window_seconds == 900.0
    shown = f"{alert.value:,.0f} s"
    assert message.summary == (
        f"[FIRING] cold-boots on deployment acme/sdxl-prod: queue time p95 {shown} "
        "(threshold 60 s) over 15m, 41 predictions (bucketed estimate, within ±19%)")

    clock.advance(16 * 60)  # the slow ones leave the window; fast ones arrive
    queued(engine, clock, 25, queue=2.0)
    evaluate(engine, [COLD], clock, cache=cache)
    assert state(engine, "cold-boots") == "resolved"
    assert [m.kind for m in messages(engine)] == ["trigger", "resolve"]


def test_latency_metrics_and_percentile(engine: Engine, clock: ManualClock) -> None:
    # 19 fast predictions and one slow: p95 is fast, p99 slow; predict and total time too.
    ingest(engine, clock, [finished("succeeded", at=clock.now, queue=1.0, predict=2.0)
                           for _ in range(19)]
           + [finished("succeeded", at=clock.now, queue=1.0, predict=300.0)])
    rules = [
        LatencyRule(name=f"{metric}-p{p:g}", scope="model", metric=metric,
             percentile=p, threshold=100.0, window=300.0, min_predictions=20)
        for metric in ("predict_time", "total_time", "queue_time") for p in (95.0, 99.0)
    ]
    evaluate(engine, rules, clock)
    firing = {rule for (rule, _name), a in alerts(engine).items() if a.state == "firing"}
    assert firing == {"predict_time-p99", "total_time-p99"}


def test_default_rules_tell_about_cold_boots(engine: Engine, clock: ManualClock) -> None:
    queued(engine, clock, 25, queue=150.0)
    evaluate(engine, default_rules(notify=("team",)), clock)
    found = alerts(engine)
    assert found[("deployment-queue-time", "acme/sdxl-prod")].state == "firing"
    assert found[("model-queue-time", "acme/sdxl")].state == "firing"
    assert not any(a.state == "firing" for (rule, _), a in found.items()
                   if "queue" not in rule)


SPEND = SpendRule(name="spend", scope="deployment", window=3600.0, threshold=0.05,
             min_predictions=0, notify=("team",))


@pytest.mark.parametrize("cached", [True, False])
def test_spend_against_a_hand_count(engine: Engine, clock: ManualClock, cached: bool) -> None:
    cache = Caches() if cached else None
    ingest(engine, clock, [finished("succeeded", at=clock.now, queue=1.0, predict=p)
                           for p in (10.0, 20.0)])
    evaluate(engine, [SPEND], clock, cache=cache, pricing=A100)
    assert alerts(engine) == {}  # $0.042: under the threshold
    clock.advance(60)
    ingest(engine, clock, [finished("failed", at=clock.now, queue=1.0, predict=30.5),
                           finished("canceled", at=clock.now, queue=1.0, predict=None)])
    evaluate(engine, [SPEND], clock, cache=cache, pricing=A100)
    alert = alerts(engine)[("spend", "acme/sdxl-prod")]
    hand = (10.0 + 20.0 + 30.5) * 0.0014  # $0.0847
    assert alert.state == "firing" and alert.value == pytest.approx(hand, abs=1e-6)
    assert alert.summary == ("spend $0.0847 (threshold $0.05) over 1h: 60 s of predict time "
                             f"on gpu-a100-large at $0.0014/s (prices as of {A100.as_of})")
    clock.advance(3700)  # the window empties: $0 is a verdict, not "no data"
    evaluate(engine, [SPEND], clock, cache=cache, pricing=A100)
    assert state(engine, "spend") == "resolved"


def test_spend_is_never_guessed(engine: Engine, clock: ManualClock) -> None:
    ingest(engine, clock, [finished("succeeded", at=clock.now, queue=1.0, predict=1000.0,
                                    model="other/llm", deployment="other/llm-prod")])
    evaluate(engine, [SPEND], clock, pricing=A100)
    assert alerts(engine) == {}  # unmapped: no spend, no alert
    assert A100.spend("deployment", "other/llm-prod", 1000.0) is None
    assert A100.spend("version", "acme/sdxl:v1", 10.0) == pytest.approx(0.014)


def test_spend_quiet_below_min_predictions(engine: Engine, clock: ManualClock) -> None:
    ingest(engine, clock, [finished("succeeded", at=clock.now, queue=1.0, predict=500.0)])
    rule = SpendRule(name="spend", scope="deployment", window=3600.0,
                threshold=0.05, min_predictions=5)
    evaluate(engine, [rule], clock, pricing=A100)
    assert alerts(engine) == {}


ABORTED = ErrorRateRule(name="aborted", scope="deployment", outcomes=("aborted",),
               threshold=0.05, window=600.0, min_predictions=20, notify=("team",))


def test_aborted_rate(engine: Engine, clock: ManualClock) -> None:
    ingest(engine, clock, [event("aborted", at=clock.now) for _ in range(3)]
           + [event("succeeded", at=clock.now) for _ in range(10)])
    evaluate(engine, [ABORTED], clock)
    assert alerts(engine) == {}  # 13 predictions: under min_predictions
    ingest(engine, clock, [event("aborted", at=clock.now) for _ in range(2)]
           + [event("succeeded", at=clock.now) for _ in range(35)]
           + [event("failed", at=clock.now, error="boom") for _ in range(3)])
    mixed = ErrorRateRule(name="failed-or-aborted", scope="deployment",
                 outcomes=("failed", "aborted"), threshold=0.2, min_predictions=20)
    plain = ErrorRateRule(name="errors", scope="deployment", threshold=0.06,
                 min_predictions=20)
    evaluate(engine, [ABORTED, mixed, plain], clock)
    found = alerts(engine)
    aborted = found[("aborted", "acme/sdxl-prod")]
    # 5 aborted / (45 succeeded + 3 failed + 5 aborted)
    assert aborted.state == "firing" and aborted.value == pytest.approx(5 / 53)
    assert aborted.summary == ("aborted rate 9.4% (5 of 53 aborted over 10m), "
                               "threshold 5%")
    # The default outcomes keep failed / (succeeded + failed): 3 / 48 = 6.25%, aborted apart.
    assert found[("errors", "acme/sdxl-prod")].value == pytest.approx(3 / 48)
    # failed or aborted: 8 / 53 = 15%, under 20%
    assert ("failed-or-aborted", "acme/sdxl-prod") not in found
    clock.advance(11 * 60)
    ingest(engine, clock, [event("succeeded", at=clock.now) for _ in range(30)])
    evaluate(engine, [ABORTED], clock)
    assert state(engine, "aborted") == "resolved"


def rate_rule(no_data: str) -> ErrorRateRule:
    return ErrorRateRule(name=f"errors-{no_data}", scope="deployment",
                threshold=0.2, window=600.0, min_predictions=20, no_data=no_data,
                notify=("team",))


def test_no_data_modes_for_a_firing_alert(engine: Engine, clock: ManualClock) -> None:
    rules = [rate_rule(mode) for mode in ("keep", "resolve", "alert")]
    ingest(engine, clock, [event("failed", at=clock.now, error="boom") for _ in range(10)]
           + [event("succeeded", at=clock.now) for _ in range(15)])
    evaluate(engine, rules, clock)
    assert {r.name: state(engine, r.name) for r in rules} == {
        "errors-keep": "firing", "errors-resolve": "firing", "errors-alert": "firing"}
    clock.advance(11 * 60)  # traffic stopped: the window empties
    evaluate(engine, rules, clock)
    assert {r.name: state(engine, r.name) for r in rules} == {
        "errors-keep": "firing", "errors-resolve": "resolved", "errors-alert": "firing"}
    found = alerts(engine)
    assert found[("errors-keep", "acme/sdxl-prod")].summary == (
        "0 of 0 failed over 10m: under 20 predictions, no verdict")
    assert found[("errors-resolve", "acme/sdxl-prod")].summary == (
        "0 of 0 failed over 10m: under 20 predictions, no verdict "
        "(no_data = resolve: treated as clear)")
    assert [(m.rule, m.kind) for m in messages(engine)][-1] == ("errors-resolve", "resolve")
    # Traffic comes back healthy: every mode resolves on the evidence.
    ingest(engine, clock, [event("succeeded", at=clock.now) for _ in range(25)])
    evaluate(engine, rules, clock)
    assert {state(engine, r.name) for r in rules} == {"resolved"}


def test_no_data_alert_fires_a_quiet_scope(engine: Engine, clock: ManualClock) -> None:
    rules = [rate_rule(mode) for mode in ("keep", "resolve", "alert")]
    ingest(engine, clock, [event("succeeded", at=clock.now) for _ in range(5)])
    evaluate(engine, rules, clock)
    assert {r.name: state(engine, r.name) for r in rules} == {
        "errors-keep": None, "errors-resolve": None, "errors-alert": "firing"}
    latency = LatencyRule(name="cold-alert", scope="deployment", threshold=60.0,
                   window=900.0, min_predictions=20, no_data="alert")
    evaluate(engine, [*rules, latency], clock)
    assert alerts(engine)[("cold-alert", "acme/sdxl-prod")].summary.endswith(
        "(no_data = alert: treated as a breach)")
