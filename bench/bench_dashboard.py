"""Dashboard benchmark: the status page, /api/status and a badge with 1,000 scopes; with
--serve, a real `hookwatch serve` with 20,000 models (bench/dashboard_serve.py).

The data is built with bulk SQL (INSERT ... SELECT over recursive CTEs), dense on purpose: every
scope has a bucket in each of the last 60 minutes, 24 hours and 90 days (mostly healthy, one
bucket in 29 bad, a few scopes failing hard), three latency bins per metric and minute, plus
thousands of failed predictions under a few dozen fingerprints.
Figures: the data-read time, the template-render time and the whole request (in process,
through the ASGI app, the response read to its end), median and p95 over the runs.

    .venv/bin/python bench/bench_dashboard.py [--scopes 1000] [--runs 30] [--database URL]
    .venv/bin/python bench/bench_dashboard.py --serve [--models 20000] [--watch 20]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

from sqlalchemy import Engine, create_engine, text

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

NOW = 1_795_000_000.0


def build(engine: Engine, *, scopes: int, now: float = NOW, failures: int = 5000) -> None:
    """Fill the bucket tables and predictions for `scopes` scopes with bulk SQL."""
    from hookwatch.storage.migrate import upgrade
    from hookwatch.storage.packed import from_bins

    upgrade(engine)
    minute = int(now) - int(now) % 60
    hour = int(now) - int(now) % 3600
    day = int(now) - int(now) % 86400
    kinds = "CASE WHEN s.i % 10 < 4 THEN 'model' WHEN s.i % 10 < 7 THEN 'deployment' " \
            "ELSE 'version' END"
    name = "CASE WHEN s.i % 10 < 7 THEN 'acme/model-' || s.i ELSE 'acme/model-' || s.i || " \
           "':' || 'v' || (s.i % 7) END"
    gen = (
        "WITH RECURSIVE s(i) AS (SELECT 0 UNION ALL SELECT i + 1 FROM s WHERE i < :n - 1), "
        "t(k) AS (SELECT 0 UNION ALL SELECT k + 1 FROM t WHERE k < :m - 1) "
    )
    # Mostly healthy (under 1% failed), now and then a bad bucket, a few scopes failing hard.
    failed = ("((s.i * 7 + t.k * 13) % 3) + CASE WHEN (s.i + t.k) % 29 = 0 THEN 30 ELSE 0 END"
              " + CASE WHEN s.i % 97 = 0 THEN 400 ELSE 0 END")
    with engine.begin() as conn:
        for resolution, last, count in ((60, minute, 60), (3600, hour, 24), (86400, day, 90)):
            conn.execute(
                text(
                    gen + "INSERT INTO outcome_buckets (resolution, start, scope, name, "
                    "succeeded, failed, canceled, aborted, other, predict_time_sum, "
                    "predict_time_count) "
                    f"SELECT {resolution}, :last - t.k * {resolution}, {kinds}, {name}, "
                    f"500 + (s.i + t.k) % 300, {failed}, t.k % 2, 0, 0, 600.0, 500 "
                    "FROM s CROSS JOIN t"
                ),
                {"n": scopes, "m": count, "last": last},
            )
        conn.execute(text("CREATE TEMP TABLE latency_bins (resolution INTEGER, start BIGINT, "
                          "scope TEXT, name TEXT, metric TEXT, bin INTEGER, count INTEGER)"))
        for resolution, last, count in ((60, minute, 60), (3600, hour, 24)):
            for metric, base in (("predict", 20), ("queue", 8)):
                for offset in range(3):
                    conn.execute(
                        text(
                            gen + "INSERT INTO latency_bins (resolution, start, scope, "
                            "name, metric, bin, count) "
                            f"SELECT {resolution}, :last - t.k * {resolution}, {kinds}, "
                            f"{name}, '{metric}', {base} + (s.i % 5) + {offset * 3}, "
                            f"1 + (s.i + t.k + {offset}) % 9 FROM s CROSS JOIN t"
                        ),
                        {"n": scopes, "m": count, "last": last},
                    )
        conn.execute(text(from_bins("latency_bins", engine.dialect.name)))
        conn.execute(
            text(
                gen + "INSERT INTO predictions (id, status, rank, model, error, fingerprint, "
                "first_seen_at, updated_at, event_at, event_count, counted_at, source) "
                "SELECT 'p' || s.i || '-' || t.k, 'failed', 2, 'acme/model-' || ((s.i * 31) % "
                ":scopes), 'CUDA out of memory. Tried to allocate ' || t.k || ' GiB (case ' || "
                "(s.i % 40) || ')', 'CUDA out of memory. Tried to allocate <n> GiB (case ' || "
                "(s.i % 40) || ')', :now - s.i * 10, :now, :now, 3, :now - s.i * 10, 'webhook' "
                "FROM s CROSS JOIN t"
            ),
            {"n": failures // 5, "m": 5, "scopes": scopes, "now": now},
        )


def timed(fn: object, runs: int) -> list[float]:
    assert callable(fn)
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        fn()
        times.append((time.perf_counter() - start) * 1000)
    return times


def report(label: str, times: list[float]) -> None:
    times = sorted(times)
    p95 = times[min(len(times) - 1, int(len(times) * 0.95))]
    print(f"  {label:<44} median {statistics.median(times):7.1f} ms   p95 {p95:7.1f} ms")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scopes", type=int, default=1000)
    parser.add_argument("--runs", type=int, default=30)
    parser.add_argument("--database", help="SQLAlchemy URL (default: a new SQLite file)")
    parser.add_argument("--serve", action="store_true",
                        help="probe a real `hookwatch serve` from outside instead")
    parser.add_argument("--models", type=int, default=20_000,
                        help="--serve: models to send a prediction for (two scopes each)")
    parser.add_argument("--watch", type=float, default=20.0,
                        help="--serve: seconds of webhooks with and without four viewers")
    args = parser.parse_args()
    if args.serve:
        from bench.dashboard_serve import probe

        probe(models=args.models, runs=args.runs, watch=args.watch)
        return

    from fastapi.testclient import TestClient
    from sqlmodel import Session

    from hookwatch.app import create_app
    from hookwatch.dashboard.alertview import alert_views
    from hookwatch.dashboard.context import page_context, picture_for
    from hookwatch.dashboard.listing import Listing
    from hookwatch.dashboard.picture import View
    from hookwatch.dashboard.readings import Readings
    from hookwatch.dashboard.render import render
    from hookwatch.dashboard.rows import clear_memo as clear_rows
    from hookwatch.dashboard.svg import clear_memos, gaps_defs
    from hookwatch.settings import Settings

    with tempfile.TemporaryDirectory() as tmp:
        url = args.database or f"sqlite:///{tmp}/bench.db"
        engine = create_engine(url)
        started = time.perf_counter()
        build(engine, scopes=args.scopes)
        kind = url.split(":")[0]
        print(f"built {args.scopes} scopes in {time.perf_counter() - started:.1f} s ({kind})")
        engine.dispose()
        settings = Settings(database_url=url, auto_migrate=False)
        app = create_app(settings, clock=lambda: NOW, run_jobs=False)
        runtime = app.state.runtime
        # A Host the dashboard answers to (it refuses unknown names: DNS rebinding).
        board = runtime.dashboard
        with TestClient(app, base_url="http://127.0.0.1") as client, \
                runtime.engine.connect() as conn:
            def rebuild(readings: Readings) -> None:  # what a commit makes the next request do
                with Session(bind=conn) as session:
                    alerts = alert_views(session, now=NOW)
                Listing().summary(runtime.engine, readings=readings, now=NOW, alerts=alerts)

            report("data: cold caches (first request)", timed(lambda: rebuild(Readings()), 3))
            readings = board.readings
            picture = picture_for(board, View(), limit=args.scopes)
            assert len(picture.rows) == args.scopes, len(picture.rows)
            report("data: warm caches (the refresh after a commit)",
                   timed(lambda: rebuild(readings), args.runs))
            report("data: nothing committed (a page of the shared rows)",
                   timed(lambda: picture_for(board, View()), args.runs))
            minutes = iter(range(1, 10_000))
            report("data: the refresh after a minute closes",
                   timed(lambda: readings.read(conn, now=NOW + 60 * next(minutes)), 5))
            page = picture_for(board, View())  # what a viewer sees: one page of rows

            def draw(*, lines: bool = False, bars: bool = False) -> None:
                if lines or bars:
                    clear_memos(history=bars)
                    clear_rows()
                render("index.html", **page_context(page, View(), refresh="10",
                                                    gaps=gaps_defs()))

            # Once a day every closed history bar is drawn anew; on a busy refresh every
            # sparkline; on a quiet one neither.
            report("rows + template: all drawn anew (daily)",
                   timed(lambda: draw(lines=True, bars=True), args.runs))
            report("rows + template: every sparkline new",
                   timed(lambda: draw(lines=True), args.runs))
            report("rows + template: nothing changed", timed(draw, args.runs))
            size = len(client.get("/").content)
            report(f"GET / whole request ({size / 1e6:.1f} MB of HTML)",
                   timed(lambda: client.get("/"), args.runs))

            def busy_refresh() -> None:
                clear_memos(history=False)
                clear_rows()
                client.get("/")

            report("GET / with every sparkline new", timed(busy_refresh, args.runs))
            report("GET /parts/live (the 10 s refresh), every part",
                   timed(lambda: client.get("/parts/live"), args.runs))
            held = {"x-hookwatch-parts": client.get("/parts/live").headers["x-hookwatch-parts"]}
            quiet = len(client.get("/parts/live", headers=held).content)
            report(f"GET /parts/live, nothing changed ({quiet} bytes)",
                   timed(lambda: client.get("/parts/live", headers=held), args.runs))
            report("GET /api/status", timed(lambda: client.get("/api/status"), args.runs))
            report("GET /badge/deployment/acme/model-5.svg",
                   timed(lambda: client.get("/badge/deployment/acme/model-5.svg"), args.runs))
            report("GET /metrics", timed(lambda: client.get("/metrics"), 5))


if __name__ == "__main__":
    main()
