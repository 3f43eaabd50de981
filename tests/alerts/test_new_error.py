"""The new_error rule: the pure fold, and end to end through the writer and the job."""

from __future__ import annotations

import json
from pathlib import Path

from sqlalchemy import Engine, update
from sqlmodel import Session, col, select

from hookwatch.alerts.job import run_evaluation
from hookwatch.alerts.new_error import SEEDED, SETTLE, Failure, fold, fresh_by_scope
from hookwatch.alerts.rules import Rule
from hookwatch.config import load_config
from hookwatch.notifiers.message import AlertMessage
from hookwatch.notifiers.render import context
from hookwatch.storage.tables import Alert, ErrorSighting, Notification
from tests.alerts.helpers import config_text, event, ingest
from tests.conftest import ManualClock

BASE_URL = "http://hookwatch.test"
RULE = """
[[rules]]
name = "new-errors"
kind = "new_error"
scope = "model"
notify = ["team"]
{extra}
"""


def failure(fp: str, at: float, *, pid: str = "p1", version: str = "v1") -> Failure:
    return Failure(pid, "acme/sdxl", "acme/sdxl-prod", version, fp, f"{fp} (detail)", at)


def test_fold_new_then_repeat_then_after_quiet() -> None:
    first = fold({}, [failure("boom", 100.0)], scope="model", quiet_for=50.0)
    [s] = first.values()
    assert (s.name, s.appeared_at, s.count, s.version, s.prediction_id) == (
        "acme/sdxl", 100.0, 1, "v1", "p1")
    again = fold(first, [failure("boom", 120.0, pid="p2")], scope="model", quiet_for=50.0)
    [s2] = again.values()
    assert (s2.appeared_at, s2.last_seen, s2.count, s2.prediction_id) == (100.0, 120.0, 2, "p1")
    later = fold(again, [failure("boom", 171.0, pid="p3", version="v2")], scope="model",
                 quiet_for=50.0)
    [s3] = later.values()
    assert (s3.appeared_at, s3.prediction_id, s3.version) == (171.0, "p3", "v2")
    never = fold(again, [failure("boom", 10_000.0)], scope="model", quiet_for=0.0)
    assert next(iter(never.values())).appeared_at == 100.0  # quiet_for 0: only never seen


def test_fold_seeding_learns_without_announcing() -> None:
    seeded = fold({}, [failure("boom", 100.0)], scope="model", seeding=True)
    assert next(iter(seeded.values())).appeared_at == SEEDED
    assert fresh_by_scope(seeded.values(), now=110.0, window=3600.0) == {}


def test_fold_respects_scope_and_match() -> None:
    assert fold({}, [failure("boom", 1.0)], scope="deployment", match="acme/sdxl-*")
    assert not fold({}, [failure("boom", 1.0)], scope="deployment", match="other/*")
    versions = fold({}, [failure("boom", 1.0)], scope="version")
    assert [k[1] for k in versions] == ["acme/sdxl:v1"]


def rules_of(tmp_path: Path, extra: str = "") -> list[Rule]:
    path = tmp_path / "rules.toml"
    path.write_text(config_text(RULE.format(extra=extra)))
    return list(load_config(path).rules)


def fail(engine: Engine, clock: ManualClock, error: str, n: int = 1, version: str = "v1",
         pid: str | None = None) -> None:
    ingest(engine, clock, [event("failed", at=clock.now, error=error, version=version,
                                 prediction_id=pid if n == 1 else None) for _ in range(n)])


def evaluate(engine: Engine, rules: list[Rule], clock: ManualClock) -> None:
    clock.advance(SETTLE + 1)  # what was just committed has settled
    with Session(engine) as session:  # sent, as the delivery worker does between evaluations
        session.exec(update(Notification).values(state="sent"))  # type: ignore[call-overload]
        session.commit()
    run_evaluation(engine, rules=rules, now=clock.now, base_url=BASE_URL, notifiers={"team"})


def messages(engine: Engine) -> list[AlertMessage]:
    with Session(engine) as session:
        rows = session.exec(select(Notification).order_by(col(Notification.id)))
        return [AlertMessage.from_json(json.loads(n.payload)) for n in rows]


def test_a_new_fingerprint_fires_once_with_example_version_and_link(
    engine: Engine, clock: ManualClock, tmp_path: Path
) -> None:
    rules = rules_of(tmp_path)
    fail(engine, clock, "CUDA out of memory. Tried to allocate 2.00 GiB")  # before the rule
    evaluate(engine, rules, clock)
    assert messages(engine) == []  # the rule's first run learns the history quietly

    clock.advance(60)
    fail(engine, clock, "ValueError: image size 1025 is not a multiple of 64", version="v2",
         pid="pred-new-1")
    evaluate(engine, rules, clock)
    [trigger] = messages(engine)
    assert trigger.kind == "trigger" and trigger.rule_kind == "new_error"
    assert ("new error on version v2: ValueError: image size <n> is not a multiple of <n> "
            "(first example: 'ValueError: image size 1025 is not a multiple of 64', "
            f"{BASE_URL}/predictions/pred-new-1)") in trigger.summary
    assert context(trigger)["measure"].startswith("new error on version v2: ValueError")

    for _ in range(3):  # repeats, and the old fingerprint again: nothing new to say
        clock.advance(60)
        fail(engine, clock, "ValueError: image size 2049 is not a multiple of 64", n=5)
        fail(engine, clock, "CUDA out of memory. Tried to allocate 4.00 GiB")
        evaluate(engine, rules, clock)
    assert [m.kind for m in messages(engine)] == ["trigger"]

    clock.advance(60)  # a second new fingerprint while the alert fires: announced too, as an
    fail(engine, clock, "RuntimeError: NaN in output", version="v2", pid="pred-new-2")
    evaluate(engine, rules, clock)  # update of the alert's group (alerts.group)
    kinds = [(m.kind, "NaN in output" in m.summary) for m in messages(engine)]
    assert kinds == [("trigger", False), ("update", True)]
    with Session(engine) as session:
        row = session.exec(select(Alert)).one()
        assert (row.state, row.episode) == ("firing", 2)
        sightings = session.exec(select(ErrorSighting)).all()
        assert sorted(s.count for s in sightings) == [1, 4, 16]

    clock.advance(3600)  # nothing new for the window: the alert resolves
    evaluate(engine, rules, clock)
    assert [m.kind for m in messages(engine)][-1] == "resolve"


def test_unseen_for_quiet_for_counts_as_new_again(
    engine: Engine, clock: ManualClock, tmp_path: Path
) -> None:
    rules = rules_of(tmp_path, 'quiet_for = "1d"\nwindow = "10m"')
    evaluate(engine, rules, clock)  # seeds nothing: no history
    fail(engine, clock, "worker crashed", pid="pred-a")
    evaluate(engine, rules, clock)
    assert [m.kind for m in messages(engine)] == ["trigger"]
    clock.advance(3600)
    evaluate(engine, rules, clock)
    assert [m.kind for m in messages(engine)] == ["trigger", "resolve"]
    clock.advance(12 * 3600)
    fail(engine, clock, "worker crashed")  # seen 13 h ago: not new
    evaluate(engine, rules, clock)
    assert len(messages(engine)) == 2
    clock.advance(25 * 3600)
    fail(engine, clock, "worker crashed", pid="pred-b")  # unseen for over a day: new again
    evaluate(engine, rules, clock)
    last = messages(engine)[-1]
    assert last.kind == "trigger" and "/predictions/pred-b" in last.summary
