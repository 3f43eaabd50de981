"""Regression and new_error rules: simulated false alarms and detection delays, and the time of
one evaluation with these rules over 1,000 models.

Simulation (alerts.calibration, seeded): an old version's `--n-old` predictions, then the new
version's, the rule looking every `--every` predictions up to `--horizon`. The false-alarm
rate is the share of rollouts with no change that ever fire; the same loop with a
fixed-sample z-test checked at every look shows what peeking does. Detection delay: the
predictions of the new version until the rule fires (median and p90 over the rollouts).

Evaluation: a SQLite file with 1,000 models, each with an old version (first seen 20 h ago)
and a new one (3 h ago), hourly outcome and predict-time buckets, 100 decided predictions per
model in the predictions table, 20 models regressing, and 5,000 failures over 50
fingerprints; `alerts.job.run_evaluation` with regression (error_rate and predict_time,
model scope), new_error (model scope), and separately regression at deployment scope.

    .venv/bin/python bench/bench_regression.py [--runs 300] [--evals 10]
"""

from __future__ import annotations

import argparse
import random
import sqlite3
import statistics
import sys
import tempfile
import time
from pathlib import Path

from sqlalchemy import text

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from hookwatch.alerts.calibration import e_value_test, fixed_sample_test, many  # noqa: E402
from hookwatch.alerts.job import run_evaluation  # noqa: E402
from hookwatch.alerts.rules import AnyRule, NewErrorRule, RegressionRule  # noqa: E402
from hookwatch.storage.engine import make_engine  # noqa: E402
from hookwatch.storage.migrate import upgrade  # noqa: E402
from hookwatch.storage.packed import pack  # noqa: E402
from hookwatch.storage.rollups import latency_bin  # noqa: E402
from hookwatch.storage.versions import LineupCache  # noqa: E402

NOW = 1_795_000_000.0
MODELS = 1000
HOUR = 3600


def simulated(args: argparse.Namespace) -> None:
    common = {"n_old": args.n_old, "horizon": args.horizon, "every": args.every}
    print(f"false alarms under no change ({args.runs} rollouts, a look every {args.every} "
          f"predictions up to {args.horizon}, old version {args.n_old} predictions):")
    for confidence, margin, p_old, p_new in ((0.99, 0.0, 0.01, 0.01), (0.99, 0.0, 0.05, 0.05),
                                             (0.99, 0.02, 0.01, 0.03), (0.9, 0.0, 0.05, 0.05)):
        e = many(e_value_test(confidence=confidence, margin=margin, min_predictions=20),
                 runs=args.runs, p_old=p_old, p_new=p_new, seed=11, **common)
        z = many(fixed_sample_test(confidence=confidence, margin=margin, min_predictions=20),
                 runs=args.runs, p_old=p_old, p_new=p_new, seed=11, **common)
        print(f"  confidence {confidence:.0%}, margin {margin:.0%}, {p_old:.0%} -> "
              f"{p_new:.0%}: e-value {e.rate:.2%} (allowed {1 - confidence:.0%}); "
              f"z-test at every look {z.rate:.2%}")
    print("detection delay, predictions of the new version until it fires (confidence 99%):")
    for p_new, margin, n_old in ((0.25, 0.02, 1000), (0.05, 0.02, 1000), (0.05, 0.02, 10_000),
                                 (0.05, 0.01, 10_000), (0.05, 0.0, 1000)):
        s = many(e_value_test(confidence=0.99, margin=margin, min_predictions=20),
                 runs=args.runs, p_old=0.01, p_new=p_new, n_old=n_old,
                 horizon=max(args.horizon, 20_000), every=args.every, seed=13)
        print(f"  1% -> {p_new:.0%}, margin {margin:.0%}, old version {n_old}: fired in "
              f"{s.rate:.0%} of rollouts within 20,000; median {s.delay(0.5)}, "
              f"p90 {s.delay(0.9)}")


def build(path: Path) -> None:
    engine = make_engine(f"sqlite:///{path}")
    upgrade(engine)
    engine.dispose()
    rng = random.Random(5)
    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute("PRAGMA journal_mode=OFF")
    conn.execute("PRAGMA synchronous=OFF")
    conn.execute("BEGIN")
    now_hour = int(NOW) - int(NOW) % HOUR
    outcomes: dict[tuple[int, int, str, str], list[int]] = {}
    latency: list[tuple[int, int, str, str, str, int, int]] = []
    predictions: list[tuple[object, ...]] = []
    for m in range(MODELS):
        model, bad = f"acme/model-{m}", m % 50 == 0
        for h in range(24):
            start = now_hour - (23 - h) * HOUR
            for version, live in (("v0", h >= 4), ("v1", h >= 21)):
                if not live or (version == "v0" and h >= 21 and h % 2):
                    continue
                n = rng.randint(5, 15)
                failed = sum(rng.random() < (0.25 if bad and version == "v1" else 0.01)
                             for _ in range(n))
                for scope, name in (("version", f"{model}:{version}"), ("model", model),
                                    ("deployment", f"{model}-prod")):
                    for resolution in (HOUR, 60):
                        if resolution == 60 and h < 20:
                            continue
                        at = start if resolution == HOUR else start + 60 * rng.randrange(60)
                        row = outcomes.setdefault((resolution, at, scope, name), [0, 0])
                        row[0] += n - failed
                        row[1] += failed
                seconds = 2.0 * (2.5 if bad and version == "v1" else 1.0)
                for b in {latency_bin(seconds * f) for f in (0.8, 1.0, 1.2)}:
                    latency.append((HOUR, start, "version", f"{model}:{version}", "predict",
                                    b, n // 3 + 1))
        for i in range(100):
            version = "v1" if i >= 80 else "v0"
            at = NOW - (20 * HOUR if version == "v0" else 3 * HOUR) + i * 60
            failed = rng.random() < (0.25 if bad and version == "v1" else 0.01)
            error = f"error {rng.randrange(50)}: worker died" if failed else None
            fingerprint = error.replace(error.split()[1], "<n>:") if error else None
            predictions.append((f"p{m}-{i}", "failed" if failed else "succeeded", 2, model,
                                version, f"{model}-prod", error, fingerprint, 2.0, at, at, at,
                                1, at))
    conn.executemany(
        "INSERT INTO outcome_buckets (resolution, start, scope, name, succeeded, failed, "
        "canceled, aborted, other, predict_time_sum, predict_time_count) "
        "VALUES (?, ?, ?, ?, ?, ?, 0, 0, 0, 0, 0)",
        [(*k, v[0], v[1]) for k, v in outcomes.items()])
    packed: dict[tuple[int, int, str, str], dict[int, int]] = {}
    for *key, _metric, b, count in latency:  # predict time: packed indexes 0-63
        packed.setdefault((key[0], key[1], key[2], key[3]), {}).setdefault(b, count)
    conn.executemany(
        "UPDATE outcome_buckets SET latency = ? WHERE resolution = ? AND start = ? AND "
        "scope = ? AND name = ?", [(pack(hist), *key) for key, hist in packed.items()])
    conn.executemany(
        "INSERT INTO predictions (id, status, rank, model, version, deployment, error, "
        "fingerprint, predict_time, first_seen_at, updated_at, event_at, event_count, "
        "counted_at, source) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, 'webhook')",
        predictions)
    conn.execute("COMMIT")
    conn.execute("ANALYZE")
    conn.execute("PRAGMA journal_mode=WAL")
    conn.close()


def timed(path: Path, rules: list[AnyRule], evals: int, *, cached: bool
          ) -> tuple[float, float, dict[str, int]]:
    engine = make_engine(f"sqlite:///{path}")
    with engine.begin() as conn:
        for table in ("alerts", "alert_transitions", "notifications", "alert_evaluator",
                      "error_sightings", "error_sighting_cursors"):
            conn.execute(text(f"DELETE FROM {table}"))
    walls: list[float] = []
    cache = LineupCache() if cached else None
    for i in range(evals + 1):
        started = time.perf_counter()
        run_evaluation(engine, rules=rules, now=NOW + 15 * i, base_url="http://bench",
                       notifiers={"team"}, lineup_cache=cache)
        walls.append((time.perf_counter() - started) * 1000)
    with engine.connect() as conn:
        states = {f"{r}:{s}": n for r, s, n in conn.execute(text(
            "SELECT rule, state, count(*) FROM alerts GROUP BY rule, state"))}
    engine.dispose()
    return walls[0], statistics.median(walls[1:]), states


def evaluation(evals: int) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "regression.db"
        started = time.perf_counter()
        build(path)
        print(f"evaluation over {MODELS} models (built in {time.perf_counter() - started:.1f} "
              f"s; first run, then the median of {evals}, 15 s apart):")
        model_rules = [
            RegressionRule(name="regression", scope="model", notify=("team",)),
            RegressionRule(name="slower", scope="model", metric="predict_time",
                 margin=0.2, notify=("team",)),
            NewErrorRule(name="new-errors", scope="model", window=3600.0,
                 notify=("team",)),
        ]
        deployment_rules = [RegressionRule(name="dep-regression", scope="deployment",
                                 notify=("team",))]
        for label, chosen in (("model regression x2 + new_error", model_rules),
                              ("deployment regression", deployment_rules)):
            for cached in (False, True):
                first, steady, states = timed(path, chosen, evals, cached=cached)
                how = ("with the service's lineup cache (versions re-read each minute)"
                       if cached else "versions read at every evaluation")
                print(f"  {label}, {how}: first {first:.0f} ms, then median {steady:.0f} ms;"
                      f" alerts {states}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=300, help="simulated rollouts per case")
    parser.add_argument("--n-old", type=int, default=1000)
    parser.add_argument("--horizon", type=int, default=2000)
    parser.add_argument("--every", type=int, default=10)
    parser.add_argument("--evals", type=int, default=10)
    parser.add_argument("--skip-simulation", action="store_true")
    args = parser.parse_args()
    if not args.skip_simulation:
        simulated(args)
    evaluation(args.evals)


if __name__ == "__main__":
    main()
