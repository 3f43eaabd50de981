"""GET /alerts/{id}: the page notifications link to. The measured value against the threshold
over time, the transitions, each notification's fate, the failing predictions behind it, and
the acknowledge and silence forms (posted to dashboard.actions, through the guard's CSRF)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated

from fastapi import APIRouter, Path, Request
from fastapi.responses import HTMLResponse, Response
from sqlmodel import Session

from hookwatch.alerts.queries import deliveries, get_alert, transitions
from hookwatch.alerts.silence import is_active, matches
from hookwatch.alerts.store import active_silences
from hookwatch.dashboard.alert_chart import chart, series, span
from hookwatch.dashboard.alertview import delivery_state
from hookwatch.dashboard.context import Dashboard, DashboardDep
from hookwatch.dashboard.notfound import not_found
from hookwatch.dashboard.render import HTML_HEADERS, render
from hookwatch.storage.queries import failed_predictions
from hookwatch.storage.rates import top_fingerprints
from hookwatch.storage.tables import Alert, DeliveryAttempt, Notification

router = APIRouter(include_in_schema=False)

AlertId = Annotated[int, Path(ge=1, le=2**63 - 1)]
GROUPS = 5  # failure groups shown
PER_GROUP = 3  # predictions linked per group
MUTED = "written while the alert was muted (a silence or an inhibition), so never sent"


@dataclass(frozen=True, slots=True)
class Fate:
    """One notification: to whom, what, and what became of it."""

    id: int
    notifier: str
    kind: str
    state: str  # queued | sent | retrying | failed | suppressed
    created_at: float
    sent_at: float | None
    due_at: float
    attempts: int
    http_status: int | None
    error: str | None  # redacted by the delivery worker before it was stored
    why: str | None  # suppressed: why


@dataclass(frozen=True, slots=True)
class FailingGroup:
    fingerprint: str
    count: int
    example: str
    predictions: list[tuple[str, float]]  # (id, counted at), newest first


def _fate(row: Notification, attempts: list[DeliveryAttempt]) -> Fate:
    state = delivery_state(row)
    last = attempts[-1] if attempts else None
    return Fate(
        id=row.id or 0, notifier=row.notifier, kind=row.kind, state=state,
        created_at=row.created_at, sent_at=row.sent_at, due_at=row.due_at,
        attempts=row.attempts, http_status=last.http_status if last else None,
        error=None if state == "suppressed" else (row.last_error or (last.error if last else None)),
        why=(row.last_error or MUTED) if state == "suppressed" else None,
    )


def _failing(session: Session, alert: Alert, start: float, end: float) -> list[FailingGroup]:
    groups = top_fingerprints(session, since=start, scope=alert.scope, name=alert.name,
                              limit=GROUPS)
    if not groups:
        return []
    examples: dict[str, list[tuple[str, float]]] = {}
    for p in failed_predictions(session, scope=alert.scope, name=alert.name, since=start,
                                until=end):
        kept = examples.setdefault(p.fingerprint or "(no error text)", [])
        if len(kept) < PER_GROUP:
            kept.append((p.id, p.counted_at or p.updated_at))
    return [FailingGroup(g.fingerprint, g.count, g.example[:500], examples.get(g.fingerprint, []))
            for g in groups]


def alert_html(board: Dashboard, alert_id: int, *, flash: str | None = None,
               ok: bool = True) -> str | None:
    """The page, or None when there is no such alert."""
    now = board.clock()
    with Session(board.engine) as session:
        alert = get_alert(session, alert_id=alert_id)
        if alert is None:
            return None
        rule = next((r for r in board.alerts.rules if r.name == alert.rule), None)
        history = transitions(session, alert_id=alert_id, limit=200)
        notes = deliveries(session, alert_ids=[alert_id], limit_per_alert=100).get(alert_id, [])
        silences = [s for s in active_silences(session, now=now)
                    if is_active(s, now) and matches(s, rule=alert.rule, scope=alert.scope,
                                                     name=alert.name)]
        start, end = span(alert, now)
        drawn = series(session.connection(), alert, rule, history, now)
        failing = _failing(session, alert, start, end) if alert.rule_kind in (
            "error_rate", "burn_rate") else []
    return render(
        "alert.html", a=alert, rule=rule, now=now, chart=chart(drawn), series=drawn,
        transitions=history, fates=[_fate(n, a) for n, a in notes], failing=failing,
        silences=silences, flash=flash, ok=ok, percent=alert.rule_kind == "error_rate",
        oob=False,
    )


@router.get("/alerts/{alert_id}", response_class=HTMLResponse)
def alert_page(alert_id: AlertId, request: Request, board: DashboardDep) -> Response:
    html = alert_html(board, alert_id)
    if html is None:
        return not_found(request, "alert", f"there is no alert {alert_id}")
    return HTMLResponse(html, headers=HTML_HEADERS)
