"""The regression rule end to end: predictions through the real writer, versions read from the
buckets (model) or the predictions (deployment), alerts and outbox rows from the job."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from sqlalchemy import Engine
from sqlmodel import Session, col, select

from hookwatch.alerts.job import run_evaluation
from hookwatch.alerts.regression import RegressionSpec, judge_regression
from hookwatch.alerts.rules import Rule
from hookwatch.config import ConfigError, load_config
from hookwatch.notifiers.message import AlertMessage
from hookwatch.notifiers.render import context
from hookwatch.storage.tables import Alert, Notification
from hookwatch.storage.versions import LineupCache, deployment_lineups, model_lineups
from tests.alerts.helpers import config_text, event, ingest
from tests.conftest import ManualClock

BASE_URL = "http://hookwatch.test"
V1 = "39ed52f2a78e934b3ba6e2a89f5b1c712de7dfea535525255b1aa35c5565e08b"
V2 = "5c7d5dc6dd8bf75c1acaa8565735e7986bc5b66206b55cca93cb72c9bf15ccaa"
V3 = "0f1e2d3c4b5a69788796a5b4c3d2e1f00f1e2d3c4b5a69788796a5b4c3d2e1f0"


def rules_of(tmp_path: Path, body: str) -> list[Rule]:
    path = tmp_path / "rules.toml"
    path.write_text(config_text(body))
    return list(load_config(path).rules)


def regression(scope: str = "model", metric: str = "error_rate", extra: str = "") -> str:
    return f"""
[[rules]]
name = "version-regression"
kind = "regression"
scope = "{scope}"
metric = "{metric}"
confidence = 0.99
min_predictions = 20
notify = ["team"]
{extra}
"""


def traffic(engine: Engine, clock: ManualClock, *, version: str, ok: int, failed: int,
            model: str = "acme/sdxl", deployment: str = "acme/sdxl-prod",
            predict_time: float | None = None) -> None:
    events = [event("succeeded", at=clock.now, model=model, deployment=deployment,
                    version=version, predict_time=predict_time) for _ in range(ok)]
    events += [event("failed", at=clock.now, model=model, deployment=deployment,
                     version=version, error="CUDA out of memory", predict_time=predict_time)
               for _ in range(failed)]
    ingest(engine, clock, events)


def evaluate(engine: Engine, rules: list[Rule], clock: ManualClock) -> None:
    run_evaluation(engine, rules=rules, now=clock.now, base_url=BASE_URL, notifiers={"team"})


def alert(engine: Engine, name: str = "acme/sdxl") -> Alert | None:
    with Session(engine) as session:
        return session.exec(select(Alert).where(Alert.name == name)).first()


def messages(engine: Engine) -> list[AlertMessage]:
    with Session(engine) as session:
        rows = session.exec(select(Notification).order_by(col(Notification.id)))
        return [AlertMessage.from_json(json.loads(n.payload)) for n in rows]


def rollout(engine: Engine, clock: ManualClock, *, new_ok: int, new_failed: int) -> None:
    traffic(engine, clock, version=V1, ok=297, failed=3)
    clock.advance(2 * 3600)
    traffic(engine, clock, version=V2, ok=new_ok, failed=new_failed)


def test_a_worse_new_version_fires_with_both_versions_counts(
    engine: Engine, clock: ManualClock, tmp_path: Path
) -> None:
    rules = rules_of(tmp_path, regression())
    rollout(engine, clock, new_ok=30, new_failed=10)
    evaluate(engine, rules, clock)
    row = alert(engine)
    assert row is not None and row.state == "firing"
    assert row.summary.startswith("version 5c7d5dc6: 10 of 40 failed (25%) against 3 of 300 "
                                  "(1%) for 39ed52f2; evidence ")
    assert row.value is not None and row.value >= 100
    [message] = messages(engine)
    assert message.kind == "trigger" and message.rule_kind == "regression"
    assert "10 of 40 failed (25%) against 3 of 300 (1%)" in message.summary
    measured = context(message)["measure"]  # what every channel's template shows
    assert measured.startswith("version 5c7d5dc6: 10 of 40 failed (25%)")
    assert "evidence 2,683 (fires at 100)" in measured

    clock.advance(3600)  # a newer, healthy version takes over: the comparison moves on
    traffic(engine, clock, version=V3, ok=100, failed=0)
    evaluate(engine, rules, clock)
    row = alert(engine)
    assert row is not None and row.state == "resolved"
    assert [m.kind for m in messages(engine)] == ["trigger", "resolve"]


def test_a_new_version_as_good_as_the_old_stays_quiet(
    engine: Engine, clock: ManualClock, tmp_path: Path
) -> None:
    rules = rules_of(tmp_path, regression())
    rollout(engine, clock, new_ok=40, new_failed=0)
    evaluate(engine, rules, clock)
    assert alert(engine) is None and messages(engine) == []


def test_below_min_predictions_no_verdict(engine: Engine, clock: ManualClock,
                                          tmp_path: Path) -> None:
    rules = rules_of(tmp_path, regression())
    rollout(engine, clock, new_ok=0, new_failed=19)  # all failed, but 19 < 20
    evaluate(engine, rules, clock)
    assert alert(engine) is None
    traffic(engine, clock, version=V2, ok=0, failed=1)
    evaluate(engine, rules, clock)
    row = alert(engine)
    assert row is not None and row.state == "firing"


def test_a_fleet_wide_outage_is_not_blamed_on_the_version(
    engine: Engine, clock: ManualClock, tmp_path: Path
) -> None:
    rules = rules_of(tmp_path, regression())
    traffic(engine, clock, version="o1", ok=198, failed=2, model="acme/other",
            deployment="acme/other-prod")
    traffic(engine, clock, version=V1, ok=297, failed=3)
    clock.advance(2 * 3600)
    traffic(engine, clock, version="o1", ok=150, failed=50, model="acme/other",
            deployment="acme/other-prod")
    traffic(engine, clock, version=V2, ok=30, failed=10)
    evaluate(engine, rules, clock)
    assert alert(engine) is None  # no verdict while every model worsens together
    with engine.connect() as conn:
        lineup = model_lineups(conn, now=clock.now, lookback=86400)["acme/sdxl"]
    assert [v.version for v in lineup.versions] == [V1, V2]
    assert lineup.peers(lineup.since, clock.now + 3600).failed == 52
    verdict = judge_regression(RegressionSpec(), lineup, clock.now)
    assert verdict.breach is None
    assert verdict.describe().endswith("all other models worsened too, 1% to 25% since "
                                       "5c7d5dc6 appeared: no verdict while they do")


def test_deployment_scope_reads_its_own_versions(engine: Engine, clock: ManualClock,
                                                 tmp_path: Path) -> None:
    rules = rules_of(tmp_path, regression(scope="deployment"))
    traffic(engine, clock, version=V1, ok=297, failed=3)
    # the same versions on another deployment, fine: only acme/sdxl-prod regresses
    traffic(engine, clock, version=V1, ok=100, failed=0, deployment="acme/sdxl-canary")
    clock.advance(2 * 3600)
    traffic(engine, clock, version=V2, ok=30, failed=10)
    traffic(engine, clock, version=V2, ok=40, failed=0, deployment="acme/sdxl-canary")
    evaluate(engine, rules, clock)
    prod, canary = alert(engine, "acme/sdxl-prod"), alert(engine, "acme/sdxl-canary")
    assert prod is not None and prod.state == "firing" and prod.scope == "deployment"
    assert canary is None
    with engine.connect() as conn:
        lineup = deployment_lineups(conn, now=clock.now, lookback=86400)["acme/sdxl-prod"]
    assert lineup.peers_label == "the other deployments of acme/sdxl"


def test_median_predict_time(engine: Engine, clock: ManualClock, tmp_path: Path) -> None:
    rules = rules_of(tmp_path, regression(metric="predict_time"))
    traffic(engine, clock, version=V1, ok=300, failed=0, predict_time=1.0)
    clock.advance(2 * 3600)
    traffic(engine, clock, version=V2, ok=20, failed=0, predict_time=1.1)  # 10% slower
    evaluate(engine, rules, clock)
    assert alert(engine) is None
    traffic(engine, clock, version=V2, ok=60, failed=0, predict_time=3.0)
    evaluate(engine, rules, clock)
    row = alert(engine)
    assert row is not None and row.state == "firing"
    assert "median predict time" in row.summary and "60 of 80 slower" in row.summary


@pytest.mark.parametrize(("extra", "problem"), [
    ('scope = "version"', "regression compares versions within a model or a deployment"),
    ('metric = "p99"', "metric: 'p99' is not one of error_rate, predict_time"),
    ("confidence = 1.0", "confidence: 1.0 is out of range (0, 1)"),
    ('threshold = 0.2', "threshold: not valid for kind 'regression'"),
])
def test_config_problems(tmp_path: Path, extra: str, problem: str) -> None:
    keys = {"scope": '"model"', "metric": '"error_rate"'}
    key, _, value = extra.partition(" = ")
    keys[key] = value
    body = '[[rules]]\nname = "r"\nkind = "regression"\n' + "".join(
        f"{k} = {v}\n" for k, v in keys.items())
    path = tmp_path / "rules.toml"
    path.write_text(config_text(body))
    with pytest.raises(ConfigError) as caught:
        load_config(path)
    assert any(problem in p for p in caught.value.problems), caught.value.problems


def test_the_lineup_cache_rereads_after_max_age(engine: Engine, clock: ManualClock) -> None:
    cache = LineupCache(max_age=60)
    traffic(engine, clock, version=V1, ok=10, failed=0)
    with engine.connect() as conn:
        first = cache.get(conn, scope="model", now=clock.now, lookback=86400)
        traffic(engine, clock, version=V2, ok=10, failed=0)
        assert cache.get(conn, scope="model", now=clock.now + 59, lookback=86400) is first
        again = cache.get(conn, scope="model", now=clock.now + 60, lookback=86400)
    assert [v.version for v in first["acme/sdxl"].versions] == [V1]
    assert [v.version for v in again["acme/sdxl"].versions] == [V1, V2]


def test_margin_defaults_by_metric(tmp_path: Path) -> None:
    [rate, slow, set_] = rules_of(tmp_path, regression() + regression(metric="predict_time")
                                  .replace("version-regression", "slow")
                                  + regression(extra="margin = 0.05").replace(
                                      "version-regression", "set"))
    assert [r.margin for r in (rate, slow, set_)] == [0.02, 0.2, 0.05]  # type: ignore[union-attr]
    assert "newest version median predict time 20% slower" in slow.describe()
