"""GET /metrics, and the collector that reads the database at scrape time.

Counters kept in memory (webhooks received, in hookwatch.metrics) say what this process saw;
the collector adds what the database knows, so every replica reports the same totals:
predictions by outcome and scope (from the daily buckets, which are never pruned, so the
series only go up), predictions in flight, alerts by state and severity, notification
attempts by notifier and outcome.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator

from fastapi import APIRouter
from fastapi.responses import Response
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector
from sqlalchemy import Connection, Engine, text

from hookwatch.dashboard.context import DashboardDep
from hookwatch.storage.rates import OUTCOME_COLUMNS
from hookwatch.storage.window_cache import ClosedSeries

log = logging.getLogger("hookwatch.dashboard")
router = APIRouter()


class DatabaseCollector(Collector):
    """Gauges and counters computed from the database when Prometheus scrapes.

    Prediction totals are the closed days' sums, read once a day (storage.window_cache), plus the
    open day's buckets, read at every scrape.
    """

    def __init__(self, engine: Engine, clock: Callable[[], float]) -> None:
        self.engine = engine
        self.clock = clock
        self.closed = ClosedSeries(resolution=86400, span=None, load=_totals)

    def describe(self) -> list[Metric]:
        return []  # computed at scrape time: never collected at registration

    def collect(self) -> Iterator[Metric]:
        predictions = CounterMetricFamily(
            "hookwatch_predictions",
            "Predictions that reached a terminal state, by scope, name and outcome.",
            labels=["scope", "name", "outcome"],
        )
        in_flight = GaugeMetricFamily(
            "hookwatch_predictions_in_flight",
            "Predictions seen starting or processing and not yet terminal.",
            labels=["status"],
        )
        alerts = GaugeMetricFamily(
            "hookwatch_alerts", "Alert instances by state and severity (muted: silenced "
            "or inhibited).", labels=["state", "severity", "muted"],
        )
        attempts = CounterMetricFamily(
            "hookwatch_notification_attempts",
            "Notification delivery attempts, by notifier and outcome (sent, retry, failed).",
            labels=["notifier", "outcome"],
        )
        try:
            with self.engine.connect() as conn:
                now = self.clock()
                totals = {k: list(v) for k, v in self.closed.closed(conn, now).items()}
                for key, sums in _totals(conn, self.closed.bounds(now)[1], now + 1).items():
                    mine = totals.setdefault(key, [0] * len(OUTCOME_COLUMNS))
                    for i, value in enumerate(sums):
                        mine[i] += value
                for (scope, name), sums in sorted(totals.items()):
                    for outcome, value in zip(OUTCOME_COLUMNS, sums, strict=True):
                        if value:
                            predictions.add_metric([scope, name, outcome], float(value))
                seen = {"starting": 0.0, "processing": 0.0}
                for status, count in conn.execute(text(
                    "SELECT status, COUNT(*) FROM predictions WHERE rank < 2 GROUP BY status"
                )):
                    seen[status] = float(count)
                for status, count in seen.items():
                    in_flight.add_metric([status], count)
                for state, severity, muted, count in conn.execute(text(
                    "SELECT state, severity, muted_by IS NOT NULL, COUNT(*) FROM alerts "
                    "GROUP BY state, severity, muted_by IS NOT NULL"
                )):
                    alerts.add_metric([state, severity, "true" if muted else "false"], count)
                for notifier, outcome, count in conn.execute(text(
                    "SELECT n.notifier, a.outcome, COUNT(*) FROM delivery_attempts a "
                    "JOIN notifications n ON n.id = a.notification_id "
                    "GROUP BY n.notifier, a.outcome"
                )):
                    attempts.add_metric([notifier, outcome], float(count))
        except Exception as exc:  # a scrape must answer even when the database does not
            log.warning("metrics: database unreachable (%s)", type(exc).__name__)
            yield _database_up(False)
            return
        yield from (_database_up(True), predictions, in_flight, alerts, attempts)


def _database_up(up: bool) -> GaugeMetricFamily:
    gauge = GaugeMetricFamily("hookwatch_database_up", "1 when the scrape read the database.")
    gauge.add_metric([], 1.0 if up else 0.0)
    return gauge


def _totals(conn: Connection, lo: int, hi: float) -> dict[tuple[str, str], list[int]]:
    """Outcome sums per scope over the daily buckets starting in [lo, hi)."""
    cols = ", ".join(f"SUM({c})" for c in OUTCOME_COLUMNS)
    return {
        (scope, name): [int(v or 0) for v in sums]
        for scope, name, *sums in conn.execute(
            text(f"SELECT scope, name, {cols} FROM outcome_buckets WHERE resolution = 86400 "
                 "AND start >= :lo AND start < :hi GROUP BY scope, name"),
            {"lo": lo, "hi": hi},
        )
    }


@router.get("/metrics", tags=["status"], include_in_schema=True)
def metrics(board: DashboardDep) -> Response:
    """Prometheus text exposition of this process's counters and the database's totals."""
    return Response(generate_latest(board.registry), media_type=CONTENT_TYPE_LATEST)
