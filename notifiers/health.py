"""Whether a notifier keeps failing: its send record (one row per notifier), the pure rule, and
the SQL that keeps the record in the attempt's transaction."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass

from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector
from sqlalchemy import Connection, Engine, Table, case, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlmodel import SQLModel

from hookwatch.storage.tables import NotifierHealth

HEALTH: Table = SQLModel.metadata.tables[NotifierHealth.__tablename__]
# Failing: this many permanent failures in a row (a revoked token, a deleted channel: every
# later send will fail the same way), or temporary ones for this long without one success
# (an hour of 5xx or timeouts is an outage, not a blip).
PERMANENT_STREAK = 5
TEMPORARY_FOR = 3600.0
# While failing with a fallback, one notification in this long is still tried on the notifier
# itself (the others go to the fallback), so that its recovery is noticed.
PROBE_INTERVAL = 300.0


@dataclass(frozen=True)
class Health:
    notifier: str
    permanent_streak: int = 0
    failing_since: float | None = None
    last_attempt_at: float | None = None
    last_success_at: float | None = None
    last_error: str | None = None

    def failing(self, now: float) -> bool:
        if self.permanent_streak >= PERMANENT_STREAK:
            return True
        return self.failing_since is not None and now - self.failing_since >= TEMPORARY_FOR

    def probe_due(self, now: float) -> bool:
        return self.last_attempt_at is None or now >= self.last_attempt_at + PROBE_INTERVAL

    def reason(self) -> str:
        if self.permanent_streak >= PERMANENT_STREAK:
            why = f"{self.permanent_streak} permanent failures in a row"
        else:
            why = "no successful send for over an hour"
        return why + (f"; last error: {self.last_error}" if self.last_error else "")


@dataclass(frozen=True)
class Outcome:
    """One send's result, for the record: ok, or a failure that is permanent or not."""

    notifier: str
    ok: bool
    permanent: bool = False
    error: str | None = None  # already redacted


def after(health: Health, outcome: Outcome, *, now: float) -> Health:
    """The record once `outcome` is noted (what `note` writes, for the worker's own copy)."""
    if outcome.ok:
        return Health(health.notifier, 0, None, now, now, None)
    return Health(
        health.notifier,
        health.permanent_streak + (1 if outcome.permanent else 0),
        health.failing_since if health.failing_since is not None else now,
        now, health.last_success_at, outcome.error,
    )


def note(conn: Connection, outcome: Outcome, *, now: float) -> None:
    """Update the notifier's record in the caller's transaction."""
    h = HEALTH
    dialect = postgresql if conn.dialect.name == "postgresql" else sqlite
    conn.execute(dialect.insert(h).values(notifier=outcome.notifier, permanent_streak=0)
                 .on_conflict_do_nothing(index_elements=["notifier"]))
    values: dict[str, object]
    if outcome.ok:
        values = {"permanent_streak": 0, "failing_since": None, "last_success_at": now,
                  "last_error": None}
    else:
        values = {
            "permanent_streak": h.c.permanent_streak + 1 if outcome.permanent
            else h.c.permanent_streak,
            "failing_since": case((h.c.failing_since.is_(None), now),
                                  else_=h.c.failing_since),
            "last_error": outcome.error,
        }
    values["last_attempt_at"] = now
    conn.execute(update(h).where(h.c.notifier == outcome.notifier).values(**values))


def load(engine: Engine, names: list[str] | None = None) -> dict[str, Health]:
    """The record of every notifier (of `names`, when given) that has one."""
    stmt = select(HEALTH)
    if names is not None:
        stmt = stmt.where(HEALTH.c.notifier.in_(sorted(names)))
    with engine.connect() as conn:
        return {r["notifier"]: Health(**r) for r in conn.execute(stmt).mappings()}


def summary(engine: Engine, names: list[str], *, now: float) -> dict[str, str]:
    """For /readyz: "ok", or why, per configured notifier."""
    found = failing(engine, names, now=now)
    return {n: f"failing: {found[n].reason()}" if n in found else "ok" for n in sorted(names)}


class HealthCollector(Collector):
    """/metrics: hookwatch_notifier_failing{notifier} is 1 while it keeps failing; read from
    the database at each scrape, so every replica tells the same."""

    def __init__(self, engine: Engine, names: list[str], clock: Callable[[], float]) -> None:
        self.engine = engine
        self.names = names
        self.clock = clock

    def collect(self) -> Iterator[Metric]:
        gauge = GaugeMetricFamily(
            "hookwatch_notifier_failing",
            "1 while the notifier keeps failing (5 permanent failures in a row, or an hour of "
            "temporary ones); its notifications go to its fallback, if it has one.",
            labels=["notifier"],
        )
        try:
            found = failing(self.engine, self.names, now=self.clock())
        except Exception:  # a scrape must not fail with the database; /readyz tells that
            return
        for name in sorted(self.names):
            gauge.add_metric([name], 1.0 if name in found else 0.0)
        yield gauge


def failing(engine: Engine, names: list[str], *, now: float) -> dict[str, Health]:
    """The configured notifiers that keep failing, by name."""
    return {n: h for n, h in load(engine, names).items() if h.failing(now)}

