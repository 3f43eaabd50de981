"""What each new_error rule has seen: error fingerprints per scope, kept in the database and
brought up to date inside the evaluation's transaction (under the evaluator lock)."""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from sqlalchemy import select as sa_select
from sqlmodel import Session, col, select

from hookwatch.alerts.new_error import (
    SETTLE,
    Failure,
    NewErrors,
    Sighting,
    SightingKey,
    fingerprint_key,
    fold,
    fresh_by_scope,
)
from hookwatch.alerts.rules import AnyRule, NewErrorRule
from hookwatch.storage.rollups import scope_names
from hookwatch.storage.tables import ErrorSighting, Prediction, SightingCursor

SEED_SPAN = 7 * 86400.0
"""A rule's first evaluation learns this much history (or quiet_for, if longer), so it does
not announce every fingerprint the install already knows."""


def _to_pure(row: ErrorSighting) -> Sighting:
    return Sighting(row.scope, row.name, row.fingerprint, row.first_seen, row.appeared_at,
                    row.last_seen, row.count, row.prediction_id, row.version, row.example)


def failures_between(session: Session, *, after: float, through: float) -> list[Failure]:
    """Failures counted in (after, through], oldest first, via (status, counted_at)."""
    p = Prediction.__table__.c  # type: ignore[attr-defined]
    query = sa_select(p.id, p.model, p.deployment, p.version, p.fingerprint, p.error,
                      p.counted_at).where(
        p.status == "failed", p.counted_at > after, p.counted_at <= through
    ).order_by(p.counted_at, p.id)
    return [Failure(pid, model, deployment, version, fp or "(no error text)", error or "",
                    float(counted or 0.0))
            for pid, model, deployment, version, fp, error, counted
            in session.connection().execute(query)]


def _known(session: Session, rule: str, keys: Iterable[SightingKey]
           ) -> dict[SightingKey, ErrorSighting]:
    wanted = sorted(set(keys))
    found: dict[SightingKey, ErrorSighting] = {}
    for i in range(0, len(wanted), 300):
        chunk = wanted[i:i + 300]
        query = select(ErrorSighting).where(
            ErrorSighting.rule == rule,
            col(ErrorSighting.fingerprint_key).in_(sorted({k[2] for k in chunk})),
            col(ErrorSighting.name).in_(sorted({k[1] for k in chunk})))
        for row in session.exec(query):
            found[(row.scope, row.name, row.fingerprint_key)] = row
    return found


def track(session: Session, rules: Sequence[AnyRule], *, now: float, base_url: str
          ) -> dict[str, NewErrors]:
    """Fold the failures counted since each new_error rule's cursor into its sightings and
    return the fresh appearances per rule. Runs in the caller's (locked) transaction."""
    watching = [r for r in rules if isinstance(r, NewErrorRule)]
    if not watching:
        return {}
    through = now - SETTLE
    cursors = {c.rule: c for c in session.exec(select(SightingCursor).where(
        col(SightingCursor.rule).in_([r.name for r in watching])))}
    starts = {r.name: (cursors[r.name].through if r.name in cursors
                       else through - max(SEED_SPAN, r.quiet_for)) for r in watching}
    earliest = min(starts.values())
    failures = failures_between(session, after=earliest, through=through) \
        if through > earliest else []
    result: dict[str, NewErrors] = {}
    for rule in watching:
        cursor = cursors.get(rule.name)
        seeding = cursor is None
        after = starts[rule.name]
        mine = [f for f in failures if f.counted_at > after]
        keys = {(rule.scope, name, fingerprint_key(f.fingerprint))
                for f in mine for s, name in scope_names(f.model, f.deployment, f.version)
                if s == rule.scope}
        rows = _known(session, rule.name, keys) if keys else {}
        changed = fold({k: _to_pure(r) for k, r in rows.items()}, mine, scope=rule.scope,
                       match=rule.match, quiet_for=rule.quiet_for, seeding=seeding)
        for key, s in changed.items():
            row = rows.get(key)
            if row is None:
                row = ErrorSighting(rule=rule.name, scope=s.scope, name=s.name,
                                    fingerprint_key=key[2], fingerprint=s.fingerprint,
                                    first_seen=s.first_seen, appeared_at=s.appeared_at,
                                    last_seen=s.last_seen, prediction_id=s.prediction_id)
            for attr in ("appeared_at", "last_seen", "count", "prediction_id", "version",
                         "example"):
                setattr(row, attr, getattr(s, attr))
            session.add(row)
        if cursor is None:
            session.add(SightingCursor(rule=rule.name, through=max(through, after)))
        elif through > cursor.through:
            cursor.through = through
            session.add(cursor)
        session.flush()
        recent = session.exec(select(ErrorSighting).where(
            ErrorSighting.rule == rule.name, col(ErrorSighting.appeared_at) > now - rule.window))
        result[rule.name] = NewErrors(
            fresh_by_scope((_to_pure(r) for r in recent), now=now, window=rule.window),
            base_url=base_url, window=rule.window)
    return result

