"""Evaluation benchmark: every rule kind over 1,000 scopes, with 50k and with 5M stored predictions.

Both databases hold the same last six hours (50,000 predictions over 250 models, each with a
deployment and two versions: 1,000 scopes; a dozen models failing hard, a few predictions
stuck). The big one adds 4.95M older predictions over the previous 90 days, with their hourly
and daily buckets and two days of minute buckets (storage.prune keeps minute buckets for two
days), and the latency histograms (queue, predict and total time) of every prediction in
minute and hourly buckets. Rows go in with bulk SQL (a bursts table expanded by a recursive
CTE), not through HTTP; the files are cached under bench/results/ (git-ignored).

Figures: one evaluation (`alerts.job.run_evaluation`: counts read, state machines, writes,
outbox rows) cold (first, creating the alert rows) and steady (the next runs, 15 s apart),
median and p95 wall time and median CPU time (the machine may be shared), for each database,
with the window cache the service uses and with full window reads; then the ratios.

    .venv/bin/python bench/bench_evaluate.py [--runs 40] [--rebuild]
"""

from __future__ import annotations

import argparse
import random
import sqlite3
import statistics
import sys
import time
from pathlib import Path

from sqlalchemy import Engine, text

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from hookwatch.alerts.job import Caches, run_evaluation  # noqa: E402
from hookwatch.alerts.pricing import Pricing  # noqa: E402
from hookwatch.alerts.rules import (  # noqa: E402
    AnyRule,
    BurnRateRule,
    ErrorRateRule,
    LatencyRule,
    NoTrafficRule,
    SpendRule,
    default_rules,
)
from hookwatch.storage.engine import make_engine  # noqa: E402
from hookwatch.storage.migrate import upgrade  # noqa: E402
from hookwatch.storage.packed import from_bins  # noqa: E402
from hookwatch.storage.rollups import latency_bin  # noqa: E402

NOW = 1_795_000_000.0
MODELS = 250  # x (model, deployment, 2 versions) = 1,000 scopes
RECENT = 50_000
OLD = 4_950_000
BUILD_VERSION = 4  # bump when the data shape changes
RESULTS = ROOT / "bench" / "results"
OOM = "CUDA out of memory. Tried to allocate 2.00 GiB"
PREDICTION_INDEXES = ("ix_predictions_rank_first_seen", "ix_predictions_status_counted",
                      "ix_predictions_first_seen_at")


def bursts(*, recent: bool, seed: int) -> list[tuple[int, float, int, int, int]]:
    """(id, at, model, n, failed): n predictions of one model finishing in the same second."""
    rng = random.Random(seed)
    rows: list[tuple[int, float, int, int, int]] = []
    total, size = (RECENT, 4) if recent else (OLD, 20)
    start, span = (NOW - 6 * 3600, 6 * 3600) if recent else (NOW - 90 * 86400, 90 * 86400 -
                                                             6 * 3600)
    first_id = 0 if recent else 10_000_000
    made = 0
    while made < total:
        n = min(rng.randint(1, size) if recent else size, total - made)
        model = rng.randrange(MODELS)
        at = start + rng.random() * span
        bad = model % 20 == 0 and recent and at > NOW - 1800  # 13 models fail hard, lately
        failed = sum(rng.random() < (0.5 if bad else 0.02) for _ in range(n))
        rows.append((first_id + len(rows), at, model, n, failed))
        made += n
    return rows


def build(path: Path, *, old: bool) -> None:
    engine = make_engine(f"sqlite:///{path}")
    upgrade(engine)
    engine.dispose()
    rows = bursts(recent=True, seed=1) + (bursts(recent=False, seed=2) if old else [])
    # A throwaway file: no journal, no fsync, a big page cache (https://sqlite.org/pragma.html).
    conn = sqlite3.connect(path, isolation_level=None)
    for pragma in ("journal_mode=OFF", "synchronous=OFF", "cache_size=-1000000",
                   "temp_store=MEMORY"):
        conn.execute(f"PRAGMA {pragma}")
    conn.execute("BEGIN")
    for index in PREDICTION_INDEXES:  # built once at the end: much faster than row by row
        conn.execute(f"DROP INDEX IF EXISTS {index}")
    conn.execute("CREATE TEMP TABLE bursts (b INTEGER PRIMARY KEY, at REAL, m INTEGER, "
                 "n INTEGER, failed INTEGER, queue INTEGER, predict INTEGER, total INTEGER)")
    conn.executemany("INSERT INTO bursts VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                     [(*row, *latency_bins(row)) for row in rows])
    conn.execute(
        "WITH RECURSIVE k(j) AS (SELECT 0 UNION ALL SELECT j + 1 FROM k WHERE j < 19) "
        "INSERT INTO predictions (id, status, rank, model, version, deployment, error, "
        "fingerprint, created_at, started_at, completed_at, predict_time, first_seen_at, "
        "updated_at, event_at, event_count, counted_at, counted_by, source) "
        "SELECT 'p' || b.b || '-' || k.j, CASE WHEN k.j < b.failed THEN 'failed' ELSE "
        "'succeeded' END, 2, 'acme/model-' || b.m, 'v' || (k.j % 2), "
        "'acme/model-' || b.m || '-prod', CASE WHEN k.j < b.failed THEN ? END, "
        "CASE WHEN k.j < b.failed THEN ? END, b.at - 3, b.at - 2, b.at, 2.0, b.at - 3, "
        "b.at, b.at, 3, b.at, 'bench', 'webhook' FROM bursts b JOIN k ON k.j < b.n",
        (OOM, OOM.replace("2.00", "<n>")),
    )
    # a few predictions that never finished: 40 over 15 minutes old, 40 fresh
    conn.execute(
        "INSERT INTO predictions (id, status, rank, model, deployment, first_seen_at, "
        "updated_at, event_at, event_count, source) SELECT 'stuck-' || b.b, 'processing', "
        "1, 'acme/model-' || b.m, 'acme/model-' || b.m || '-prod', "
        "CASE WHEN b.b % 2 = 0 THEN ? ELSE ? END, ?, ?, 1, 'webhook' FROM bursts b "
        "WHERE b.b < 80", (NOW - 3600, NOW - 60, NOW, NOW))
    for index, columns in zip(PREDICTION_INDEXES, ("rank, first_seen_at",
                                                    "status, counted_at", "first_seen_at"),
                              strict=True):
        conn.execute(f"CREATE INDEX {index} ON predictions ({columns})")
    scopes = {
        "model": ("'acme/model-' || m", "n", "failed"),
        "deployment": ("'acme/model-' || m || '-prod'", "n", "failed"),
        "version:0": ("'acme/model-' || m || ':v0'", "(n + 1) / 2", "(failed + 1) / 2"),
        "version:1": ("'acme/model-' || m || ':v1'", "n / 2", "failed / 2"),
    }
    for resolution, since in ((60, NOW - 2 * 86400), (3600, 0.0), (86400, 0.0)):
        for scope, (name, n, failed) in scopes.items():
            conn.execute(
                "INSERT INTO outcome_buckets (resolution, start, scope, name, succeeded, "
                "failed, canceled, aborted, other, predict_time_sum, predict_time_count) "
                f"SELECT ?, CAST(at AS INTEGER) - CAST(at AS INTEGER) % ? AS s, ?, {name} "
                f"AS nm, SUM({n} - {failed}), SUM({failed}), 0, 0, 0, SUM({n}) * 2.0, "
                f"SUM({n}) FROM bursts WHERE at >= ? AND {n} > 0 GROUP BY s, nm "
                "ON CONFLICT (resolution, start, scope, name) DO UPDATE SET "
                "succeeded = outcome_buckets.succeeded + excluded.succeeded, "
                "failed = outcome_buckets.failed + excluded.failed",
                (resolution, resolution, scope.split(":")[0], since),
            )
    conn.execute(LATENCY_BINS)
    for scope, (name, n, _failed) in scopes.items():
        for metric in ("queue", "predict", "total"):
            for resolution, since in ((60, NOW - 2 * 86400), (3600, 0.0)):
                conn.execute(
                    "INSERT INTO latency_bins (resolution, start, scope, name, metric, bin, "
                    f"count) SELECT ?, CAST(at AS INTEGER) - CAST(at AS INTEGER) % ? AS s, ?, "
                    f"{name} AS nm, ?, {metric}, SUM({n}) FROM bursts WHERE at >= ? AND "
                    f"{n} > 0 GROUP BY s, nm, {metric}",
                    (resolution, resolution, scope.split(":")[0], metric, since),
                )
    conn.execute(from_bins("latency_bins", "sqlite"))
    conn.execute("COMMIT")
    conn.execute("PRAGMA analysis_limit=1000")  # sampled statistics, as `PRAGMA optimize` does
    conn.execute("ANALYZE")
    conn.execute("PRAGMA journal_mode=WAL")  # as hookwatch's engine opens it
    conn.close()


LATENCY_BINS = ("CREATE TEMP TABLE latency_bins (resolution INTEGER, start INTEGER, scope TEXT, "
                "name TEXT, metric TEXT, bin INTEGER, count INTEGER)")
"""Bins one per row, packed into the bucket rows at the end (storage.packed.from_bins)."""


def latency_bins(burst: tuple[int, float, int, int, int]) -> tuple[int, int, int]:
    """Queue, predict and total time bins of a burst's predictions: seconds of queue (the
    failing models' lately: cold boots of minutes), a few seconds of predict time."""
    rng = random.Random(burst[0])
    cold = burst[2] % 20 == 0 and burst[1] > NOW - 1800
    queue = rng.uniform(60, 180) if cold else rng.lognormvariate(0.0, 1.0)
    predict = rng.lognormvariate(1.0, 0.5)
    return latency_bin(queue), latency_bin(predict), latency_bin(queue + predict)


def database(*, old: bool, rebuild: bool) -> Engine:
    RESULTS.mkdir(parents=True, exist_ok=True)
    label = "5m" if old else "50k"
    path = RESULTS / f"evaluate-{label}-v{BUILD_VERSION}.db"
    if rebuild or not path.exists():
        for stale in RESULTS.glob(f"evaluate-{label}-*"):
            stale.unlink()
        started = time.perf_counter()
        partial = path.with_suffix(".building")
        build(partial, old=old)
        partial.rename(path)
        print(f"built {path.name} in {time.perf_counter() - started:.0f} s", flush=True)
    return make_engine(f"sqlite:///{path}")


PRICING = Pricing(scopes={"acme/*": "gpu-a100-large"})  # every scope priced


def rules() -> list[AnyRule]:
    """The built-in rules (error rate, stuck, queue time per deployment and model) plus one
    of each other kind, metric and scope: 14 rules."""
    return [
        *default_rules(),
        BurnRateRule(name="deployment-slo", scope="deployment", slo=0.99,
                     min_predictions=10, notify=("team",)),
        ErrorRateRule(name="version-error-rate", scope="version", window=300.0,
                      threshold=0.3, min_predictions=5, for_=60.0, keep_firing_for=120.0,
                      notify=("team",)),
        NoTrafficRule(name="model-quiet", scope="model", window=3600.0,
                      lookback=86400.0, notify=("team",)),
        LatencyRule(name="version-predict-p99", scope="version", metric="predict_time",
                    percentile=99.0, window=3600.0, threshold=30.0, min_predictions=10,
                    notify=("team",)),
        LatencyRule(name="model-total-p50", scope="model", metric="total_time",
                    percentile=50.0, window=900.0, threshold=60.0, min_predictions=10,
                    no_data="resolve", notify=("team",)),
        ErrorRateRule(name="deployment-aborted", scope="deployment", outcomes=("aborted",),
                      threshold=0.05, min_predictions=10, notify=("team",)),
        SpendRule(name="deployment-spend", scope="deployment", window=3600.0,
                  threshold=0.25, notify=("team",)),
        SpendRule(name="model-spend-day", scope="model", window=86400.0, threshold=2.0,
                  notify=("team",)),
    ]


def measure(engine: Engine, runs: int, *, cached: bool) -> dict[str, object]:
    """Cold (first) and steady (next `runs`, 15 s apart) evaluations: wall and CPU ms."""
    with engine.begin() as conn:  # forget the previous run's alerts
        for table in ("alerts", "alert_transitions", "notifications", "alert_evaluator"):
            conn.execute(text(f"DELETE FROM {table}"))
    chosen = rules()
    cache = Caches() if cached else None

    def once(now: float) -> tuple[float, float]:
        wall, cpu = time.perf_counter(), time.process_time()
        run_evaluation(engine, rules=chosen, now=now, base_url="http://bench",
                       notifiers={"team"}, cache=cache, pricing=PRICING)
        return (time.perf_counter() - wall) * 1000, (time.process_time() - cpu) * 1000

    cold = once(NOW)
    steady = [once(NOW + 15 * (i + 1)) for i in range(runs)]
    with engine.connect() as conn:
        states = dict(conn.execute(text("SELECT state, count(*) FROM alerts GROUP BY state"))
                      .all())
        outbox = int(conn.execute(text("SELECT count(*) FROM notifications")).scalar_one())
    return {"cold": cold, "wall": [w for w, _ in steady], "cpu": [c for _, c in steady],
            "states": states, "outbox": outbox}


def p95(values: list[float]) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(len(ordered) * 0.95))]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=40)
    parser.add_argument("--rebuild", action="store_true")
    args = parser.parse_args()
    medians: dict[tuple[str, bool], float] = {}
    for old in (False, True):
        engine = database(old=old, rebuild=args.rebuild)
        with engine.connect() as conn:
            stored = int(conn.execute(text("SELECT count(*) FROM predictions")).scalar_one())
            buckets = int(conn.execute(text("SELECT count(*) FROM outcome_buckets"))
                          .scalar_one())
        label = "5M" if old else "50k"
        print(f"{label} stored predictions ({stored:,} rows, {buckets:,} bucket rows), "
              f"1,000 scopes, {len(rules())} rules:")
        for cached in (True, False):
            got = measure(engine, args.runs, cached=cached)
            wall, cpu = got["wall"], got["cpu"]
            assert isinstance(wall, list) and isinstance(cpu, list)
            medians[(label, cached)] = statistics.median(wall)
            how = "closed buckets cached (as the service runs)" if cached else \
                "every window read in full"
            cold = got["cold"]
            assert isinstance(cold, tuple)
            print(f"  {how:<44} cold {cold[0]:6.1f} ms | steady median "
                  f"{statistics.median(wall):6.1f} ms, p95 {p95(wall):6.1f} ms wall; "
                  f"median {statistics.median(cpu):6.1f} ms CPU")
        print(f"  alerts by state {got['states']}, {got['outbox']} outbox rows")
        engine.dispose()
    for cached in (True, False):
        ratio = medians[("5M", cached)] / medians[("50k", cached)]
        print(f"ratio 5M / 50k, steady medians, {'cached' if cached else 'full reads'}: "
              f"{ratio:.2f}x (target <= 1.5x; and < 100 ms)")


if __name__ == "__main__":
    main()
