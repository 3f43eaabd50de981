"""The model page (/models/{owner}/{name}): its versions side by side, the regression verdict
of the newest against the one before it, and its error fingerprints, the new ones marked."""

from __future__ import annotations

from dataclasses import dataclass

from fastapi import APIRouter, HTTPException
from fastapi.responses import HTMLResponse
from sqlalchemy import Connection
from sqlmodel import Session, col, select

from hookwatch.alerts.queries import open_alerts
from hookwatch.alerts.regression import RegressionSpec, judge_regression
from hookwatch.alerts.rules import RegressionRule, Rule
from hookwatch.dashboard.context import DashboardDep
from hookwatch.dashboard.render import HTML_HEADERS, render
from hookwatch.storage.rates import FingerprintGroup, top_fingerprints
from hookwatch.storage.rollups import percentile
from hookwatch.storage.tables import Alert, ErrorSighting
from hookwatch.storage.versions import Lineup, model_lineups

router = APIRouter(include_in_schema=False)

FINGERPRINT_SPAN = 7 * 86400.0
NEW_FOR = 86400.0  # without a new_error rule: first failure in the span within the last day


@dataclass(frozen=True)
class VersionRow:
    version: str
    first_seen: float
    volume: int
    decided: int
    error_rate: float | None
    p50: float | None
    p95: float | None
    role: str  # "newest", "previous" or ""


@dataclass(frozen=True)
class Verdict:
    rule: str
    metric: str
    state: str  # "worse", "fine", "no verdict"
    text: str
    evidence: float | None


@dataclass(frozen=True)
class FingerprintRow:
    group: FingerprintGroup
    new: bool


def version_rows(lineup: Lineup) -> list[VersionRow]:
    """Newest first; the newest and the one before it are the pair the rule compares."""
    pair = lineup.newest_pair()
    roles = {pair[1].version: "newest", pair[0].version: "previous"} if pair else {}
    return [
        VersionRow(v.version, v.first_seen, v.counts.total, v.counts.decided,
                   v.counts.error_rate, percentile(v.predict, 0.5), percentile(v.predict, 0.95),
                   roles.get(v.version, ""))
        for v in reversed(lineup.versions)
    ]


def _specs(rules: list[Rule]) -> list[tuple[str, RegressionSpec]]:
    """The configured model-scope regression rules; without one, the contract's defaults."""
    found = [(r.name, RegressionSpec(metric=r.metric, confidence=r.confidence, margin=r.margin,
                                     min_predictions=r.min_predictions, lookback=r.lookback))
             for r in rules if isinstance(r, RegressionRule) and r.scope == "model"]
    return found or [("(default: error_rate, 99%)", RegressionSpec())]


def verdicts(lineups: dict[float, Lineup | None], specs: list[tuple[str, RegressionSpec]],
             now: float) -> list[Verdict]:
    out: list[Verdict] = []
    for name, spec in specs:
        result = judge_regression(spec, lineups.get(spec.lookback), now)
        state = {True: "worse", False: "fine", None: "no verdict"}[result.breach]
        out.append(Verdict(name, spec.metric, state, result.describe(), result.evidence))
    return out


def fingerprints(conn: Connection, session: Session, *, model: str, now: float
                 ) -> list[FingerprintRow]:
    groups = top_fingerprints(conn, since=now - FINGERPRINT_SPAN, scope="model", name=model,
                              limit=20)
    fresh = set(session.exec(select(ErrorSighting.fingerprint).where(
        ErrorSighting.scope == "model", ErrorSighting.name == model,
        col(ErrorSighting.appeared_at) > now - NEW_FOR)))
    has_rule = session.exec(select(ErrorSighting.rule).where(
        ErrorSighting.scope == "model").limit(1)).first() is not None
    return [FingerprintRow(g, g.fingerprint in fresh if has_rule
                           else g.first_seen > now - NEW_FOR)
            for g in groups]


@router.get("/models/{model:path}", response_class=HTMLResponse)
def model_page(model: str, board: DashboardDep) -> HTMLResponse:
    now = board.clock()
    specs = _specs(list(board.alerts.rules))
    with board.engine.connect() as conn:
        lineups = {lookback: model_lineups(conn, now=now, lookback=lookback,
                                           names=[model]).get(model)
                   for lookback in sorted({s.lookback for _, s in specs} | {86400.0})}
        with Session(bind=conn) as session:
            groups = fingerprints(conn, session, model=model, now=now)
            alerts: list[Alert] = open_alerts(session, scope="model", name=model)
    shown = lineups.get(max(lineups))
    if shown is None and not groups and not alerts:
        raise HTTPException(404, f"no finished prediction of model {model!r} in the last "
                                 f"{max(lineups) / 86400:g} days")
    html = render("model.html", model=model, now=now,
                  versions=version_rows(shown) if shown else [],
                  verdicts=verdicts(lineups, specs, now), fingerprints=groups, alerts=alerts,
                  oob=False)
    return HTMLResponse(html, headers=HTML_HEADERS)
