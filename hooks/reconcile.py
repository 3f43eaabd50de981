"""The reconciler: asks Replicate's API about predictions whose terminal webhook never came.

Replicate retries a webhook for only about a minute
(https://replicate.com/docs/topics/webhooks/receive-webhook), so an outage longer than that
loses outcomes. Every `reconcile_interval` this job finds predictions still unfinished
`reconcile_after` seconds after they were first seen and, with HOOKWATCH_REPLICATE_API_TOKEN,
GETs `{replicate_api_url}/predictions/{id}` (https://replicate.com/docs/reference/http#predictions.get).
It never follows a URL from a payload (`urls.get`) or a redirect: the token goes to the
configured base URL and nowhere else. An answer is committed like a webhook (same forward-only
path, dedup key `rc:{id}:{status}`, source "reconciled"). Without a token nothing is fetched and
the count of unfinished predictions is reported; the alert engine's `stuck` rule pages on them.

It lives in hooks/ because it is the second way events come in: it reads Replicate's prediction
shape with hooks.payload, exactly as the webhook route does.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable
from dataclasses import dataclass
from email.utils import parsedate_to_datetime
from typing import Any
from urllib.parse import quote

import httpx
import orjson
from sqlalchemy import Engine, and_, delete, exists, func, or_
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlmodel import Session, col, select

from hookwatch.hooks.payload import PayloadError, read_prediction
from hookwatch.storage.batch import TERMINAL_RANK, NewEvent
from hookwatch.storage.rollups import Counted
from hookwatch.storage.tables import Prediction, ReconcileCheck
from hookwatch.storage.writer import Writer

log = logging.getLogger("hookwatch.reconcile")

BATCH = 50
"""Most API requests one run makes, so a backlog never turns into a burst."""
MAX_ATTEMPTS = 12
"""Answers of 'still running' or failures before giving up (about 7 hours with the backoff)."""
MAX_FAILURES_IN_A_ROW = 3
"""5xx, timeouts or refused connections in one run before it stops: the API is down."""
BACKOFF_BASE = 60.0
BACKOFF_MAX = 3600.0
TIMEOUT = 10.0
RETRY_AFTER_DEFAULT = 60.0
# Replicate's ids are 26 lower-case letters and digits; anything with '/', '.', '?', '%' or
# '@' is never put into a URL, so no id can steer a request to another path or host.
_FETCHABLE_ID = re.compile(r"^[A-Za-z0-9_-]{1,128}$")
# Outcomes after which a prediction is asked about again, once next_at has passed.
_AGAIN = ("running", "retry")



@dataclass
class ReconcileReport:
    """What one run saw and did; the reconciler keeps the last one (`Reconciler.report`)."""

    stuck: int = 0  # unfinished predictions past reconcile_after (whatever their check state)
    fetched: int = 0  # API requests made
    recorded: int = 0  # new reconciled events committed
    completed: int = 0  # predictions this run moved to a terminal state
    not_found: int = 0
    failed: int = 0  # 5xx, timeouts, refused connections, answers that are no prediction
    skipped: str | None = None  # no_token | rate_limited | unauthorized
    paused_until: float | None = None


@dataclass(frozen=True)
class _Answer:
    kind: str  # found | not_found | rate_limited | unauthorized | failed
    status_code: int | None = None
    doc: dict[str, Any] | None = None
    body: bytes = b""
    retry_after: float = RETRY_AFTER_DEFAULT


@dataclass(frozen=True)
class ReconcileSettings:
    """The reconciler's part of the service settings (hookwatch.settings)."""

    api_token: str | None  # HOOKWATCH_REPLICATE_API_TOKEN; None or "": nothing is fetched
    api_url: str
    after: float  # seconds a prediction stays unfinished before it is asked about
    max_body_bytes: int


@dataclass
class Reconciler:
    """The reconcile job, built by create_app: commits what the API says through the writer
    and tells `on_counted` (the evaluator's nudge) about the outcomes it counted."""

    engine: Engine
    writer: Writer
    settings: ReconcileSettings
    on_counted: Callable[[list[Counted]], None] = lambda _outcomes: None
    paused_until: float = 0.0  # after a 429, until when nothing is fetched
    report: ReconcileReport | None = None  # the last run's

    def run(self, now: float) -> ReconcileReport:
        """The periodic job: report unfinished predictions, and fetch them when a token is
        set."""
        settings = self.settings
        cutoff = now - settings.after
        forget_finished(self.engine)
        report = ReconcileReport(stuck=count_stuck(self.engine, cutoff=cutoff))
        token = settings.api_token
        if not token:
            report.skipped = "no_token"
        elif self.paused_until > now:
            report.skipped, report.paused_until = "rate_limited", self.paused_until
        else:
            due = due_predictions(self.engine, cutoff=cutoff, now=now, limit=BATCH)
            if due:
                with httpx.Client(
                    base_url=settings.api_url.rstrip("/"),
                    headers={
                        "Authorization": f"Bearer {token}",
                        "User-Agent": "hookwatch-reconciler",
                    },
                    timeout=TIMEOUT,
                    follow_redirects=False,  # a redirect could carry the token to another host
                ) as client:
                    _fetch_due(self, client, due, now, report)
        _log(self, report)
        self.report = report
        return report


def count_stuck(engine: Engine, *, cutoff: float) -> int:
    query = select(func.count()).select_from(Prediction).where(
        Prediction.rank < TERMINAL_RANK, Prediction.first_seen_at <= cutoff
    )
    with Session(engine) as session:
        return int(session.exec(query).one())


def due_predictions(engine: Engine, *, cutoff: float, now: float, limit: int) -> list[str]:
    """Oldest first: unfinished, first seen before cutoff, sent by Replicate (signed), due."""
    check = ReconcileCheck
    query = (
        select(Prediction.id)
        .outerjoin(check, col(check.prediction_id) == col(Prediction.id))
        .where(Prediction.rank < TERMINAL_RANK, Prediction.first_seen_at <= cutoff)
        .where(or_(
            col(check.prediction_id).is_(None),
            and_(col(check.outcome).in_(_AGAIN), col(check.next_at) <= now),
        ))
        # A Cog server's own predictions (bearer token) do not exist on Replicate's API.
        .where(col(Prediction.signed))
        .order_by(col(Prediction.first_seen_at), col(Prediction.id))
        .limit(limit)
    )
    with Session(engine) as session:
        return list(session.exec(query))


def forget_finished(engine: Engine) -> None:
    """Drop checks of predictions that finished (by webhook or by us) or were deleted."""
    unfinished = exists().where(
        col(Prediction.id) == col(ReconcileCheck.prediction_id),
        col(Prediction.rank) < TERMINAL_RANK,
    )
    with engine.begin() as conn:
        conn.execute(delete(ReconcileCheck).where(~unfinished))


def backoff(attempts: int) -> float:
    return float(min(BACKOFF_BASE * 2 ** max(attempts - 1, 0), BACKOFF_MAX))


def _fetch_due(
    rc: Reconciler, client: httpx.Client, due: list[str], now: float, report: ReconcileReport
) -> None:
    failures_in_row = 0
    for pid in due:
        if not _FETCHABLE_ID.match(pid):
            _note(rc.engine, pid, "unfetchable", None, now, next_at=now)
            continue
        answer = fetch(client, pid, now)
        report.fetched += 1
        if answer.kind == "found" and answer.doc is not None:
            failures_in_row = 0
            if _record(rc, pid, answer, now, report):
                continue
            answer = _Answer("failed", answer.status_code)
        if answer.kind == "not_found":
            failures_in_row = 0
            report.not_found += 1
            _note(rc.engine, pid, "not_found", 404, now, next_at=now)
            log.warning(
                "prediction %s: the Replicate API has no such prediction (404); it stays "
                "unfinished and is not asked about again", pid,
            )
        elif answer.kind == "rate_limited":
            until = now + answer.retry_after
            rc.paused_until = until
            report.skipped, report.paused_until = "rate_limited", until
            log.warning("the Replicate API asked to slow down (429); pausing %.0f s",
                        answer.retry_after)
            return
        elif answer.kind == "unauthorized":
            report.skipped = "unauthorized"
            log.error("the Replicate API refused HOOKWATCH_REPLICATE_API_TOKEN (HTTP %s)",
                      answer.status_code)
            return
        elif answer.kind == "failed":
            report.failed += 1
            failures_in_row += 1
            _note(rc.engine, pid, "retry", answer.status_code, now)
            if failures_in_row >= MAX_FAILURES_IN_A_ROW:
                log.warning("the Replicate API failed %d times in a row; trying again later",
                            failures_in_row)
                return


def fetch(client: httpx.Client, prediction_id: str, now: float) -> _Answer:
    """One GET of {base}/predictions/{id}, classified; never raises for network trouble."""
    try:
        response = client.get(f"/predictions/{quote(prediction_id, safe='')}")
    except httpx.HTTPError as exc:
        log.info("fetching prediction %s failed: %s", prediction_id, type(exc).__name__)
        return _Answer("failed")
    code = response.status_code
    if code == 404:
        return _Answer("not_found", code)
    if code == 429:
        wait = retry_after(response.headers.get("retry-after"), now)
        return _Answer("rate_limited", code, retry_after=wait)
    if code in (401, 403):
        return _Answer("unauthorized", code)
    if code != 200:
        return _Answer("failed", code)
    try:
        doc = orjson.loads(response.content)
    except orjson.JSONDecodeError:
        return _Answer("failed", code)
    if not isinstance(doc, dict) or doc.get("id") != prediction_id:
        return _Answer("failed", code)  # an answer about another prediction is no answer
    return _Answer("found", code, doc=doc, body=response.content)


def retry_after(value: str | None, now: float) -> float:
    """Seconds to wait, from Retry-After as seconds or an HTTP date (RFC 9110, 10.2.3)."""
    value = (value or "").strip()
    seconds = RETRY_AFTER_DEFAULT
    if value.isdigit():
        seconds = float(value)
    elif value:
        try:
            seconds = parsedate_to_datetime(value).timestamp() - now
        except (TypeError, ValueError):
            seconds = RETRY_AFTER_DEFAULT
    return min(max(seconds, 1.0), BACKOFF_MAX)


def _record(
    rc: Reconciler, pid: str, answer: _Answer, now: float, report: ReconcileReport
) -> bool:
    """Commit what the API said through the webhook path; False if it is no prediction."""
    assert answer.doc is not None
    try:
        fields = read_prediction(answer.doc, {})
    except PayloadError as exc:
        log.warning("prediction %s: the API answer is not a prediction (%s)", pid, exc.code)
        return False
    body = answer.body
    if len(body) > rc.settings.max_body_bytes:  # keep the row as small as a webhook's
        trimmed = {k: v for k, v in answer.doc.items() if k not in ("input", "output", "logs")}
        body = orjson.dumps({**trimmed, "hookwatch_trimmed": True})
    event = NewEvent(
        dedup_key=f"rc:{pid}:{fields['status']}"[:300],
        source="reconciled",
        received_at=now,
        sent_at=None,
        headers="{}",
        body=body,
        **fields,
    )
    result = rc.writer.commit([event])
    if not result.duplicates[0]:
        report.recorded += 1
    if result.counted:
        report.completed += len(result.counted)
        rc.on_counted(result.counted)  # nudges the evaluator, as a webhook's commit does
    if event.rank == TERMINAL_RANK:
        with rc.engine.begin() as conn:
            conn.execute(delete(ReconcileCheck).where(col(ReconcileCheck.prediction_id) == pid))
    else:
        _note(rc.engine, pid, "running", answer.status_code, now)
    return True


def _note(
    engine: Engine,
    pid: str,
    outcome: str,
    http_status: int | None,
    now: float,
    *,
    next_at: float | None = None,
) -> None:
    """Upsert the check row: one more attempt, and when to ask again (or never)."""
    with engine.begin() as conn:
        attempts = conn.execute(
            select(ReconcileCheck.attempts).where(col(ReconcileCheck.prediction_id) == pid)
        ).scalar_one_or_none() or 0
        attempts += 1
        if outcome in _AGAIN and attempts >= MAX_ATTEMPTS:
            outcome = "gave_up"
            log.warning("prediction %s: no terminal state after %d checks; giving up", pid,
                        attempts)
        values = {
            "prediction_id": pid, "outcome": outcome, "attempts": attempts,
            "http_status": http_status, "checked_at": now,
            "next_at": next_at if next_at is not None else now + backoff(attempts),
        }
        insert = pg_insert if conn.dialect.name == "postgresql" else sqlite_insert
        statement = insert(ReconcileCheck).values(**values)
        conn.execute(statement.on_conflict_do_update(
            index_elements=["prediction_id"],
            set_={k: v for k, v in values.items() if k != "prediction_id"},
        ))


def _log(rc: Reconciler, report: ReconcileReport) -> None:
    if report.fetched:
        log.info(
            "reconciler: %d unfinished, %d fetched, %d recorded, %d completed, %d not found, "
            "%d failed", report.stuck, report.fetched, report.recorded, report.completed,
            report.not_found, report.failed,
        )
    previous = rc.report
    if report.skipped == "no_token" and report.stuck and (
        previous is None or previous.stuck != report.stuck
    ):
        log.warning(
            "%d predictions have had no terminal webhook for over %.0f s; set "
            "HOOKWATCH_REPLICATE_API_TOKEN to let hookwatch fetch them from Replicate",
            report.stuck, rc.settings.after,
        )
