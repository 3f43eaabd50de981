"""The new_error rule: an error fingerprint (storage.fingerprint) never seen on a scope, or
unseen there for `quiet_for`, fires once, with its first example, the version it appeared on
and a link to the prediction; repeats of a known fingerprint never notify again.

Pure: `fold` turns failures (in counted order) and what the rule has already seen into the
sightings to store; `judge_new_errors` reads the fresh appearances of one scope.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field, replace
from fnmatch import fnmatchcase

from hookwatch.storage.rates import ScopeKey
from hookwatch.storage.rollups import scope_names

SETTLE = 2.0
"""Seconds: a batch's counted_at is taken before it commits, so failures newer than this may
still be in flight; an evaluation folds in failures only up to now - SETTLE, never skipping
one, and so a fingerprint folded in later than a trigger appeared after now - SETTLE."""
SEEDED = 0.0  # appeared_at of a fingerprint learnt when the rule started: never "new"
EXAMPLE_CHARS = 500


def fingerprint_key(fingerprint: str) -> str:
    """A fixed-width key for the fingerprint (up to 300 characters) in a primary key."""
    return hashlib.sha256(fingerprint.encode()).hexdigest()[:40]


@dataclass(frozen=True, slots=True)
class Failure:
    """A counted failure, as the predictions table has it."""

    prediction_id: str
    model: str | None
    deployment: str | None
    version: str | None
    fingerprint: str
    error: str
    counted_at: float


@dataclass(frozen=True, slots=True)
class Sighting:
    """One fingerprint on one scope: when first and last seen, and its current appearance
    (the first failure after a quiet gap), with that failure's example."""

    scope: str
    name: str
    fingerprint: str
    first_seen: float
    appeared_at: float
    last_seen: float
    count: int
    prediction_id: str
    version: str | None
    example: str

    @property
    def key(self) -> SightingKey:
        return (self.scope, self.name, fingerprint_key(self.fingerprint))


SightingKey = tuple[str, str, str]  # scope, name, fingerprint_key


def fold(
    known: Mapping[SightingKey, Sighting],
    failures: Iterable[Failure],
    *,
    scope: str,
    match: str = "*",
    quiet_for: float = 0.0,
    seeding: bool = False,
) -> dict[SightingKey, Sighting]:
    """The sightings these failures change or add (failures oldest first).

    A fingerprint absent from `known` appears; a known one appears again when `quiet_for` > 0
    and it had not been seen for that long. While `seeding` (the rule's first evaluation
    reads recent history), fingerprints are learnt without appearing.
    """
    changed: dict[SightingKey, Sighting] = {}
    for f in failures:
        for s, name in scope_names(f.model, f.deployment, f.version):
            if s != scope or (match != "*" and not fnmatchcase(name, match)):
                continue
            key = (s, name, fingerprint_key(f.fingerprint))
            before = changed.get(key) or known.get(key)
            version = f.version if f.version and f.version != "hidden" else None
            if before is None:
                changed[key] = Sighting(s, name, f.fingerprint, f.counted_at,
                                        SEEDED if seeding else f.counted_at, f.counted_at, 1,
                                        f.prediction_id, version, f.error[:EXAMPLE_CHARS])
                continue
            if f.counted_at < before.last_seen:
                continue  # already folded in (an overlap of reads); never counted twice
            again = (not seeding and quiet_for > 0
                     and f.counted_at - before.last_seen >= quiet_for)
            if again:
                changed[key] = replace(before, appeared_at=f.counted_at,
                                       last_seen=f.counted_at, count=before.count + 1,
                                       prediction_id=f.prediction_id, version=version,
                                       example=f.error[:EXAMPLE_CHARS])
            else:
                changed[key] = replace(before, last_seen=f.counted_at, count=before.count + 1)
    return changed


@dataclass(frozen=True)
class NewErrors:
    """A rule's fingerprints that appeared within its window, by scope."""

    fresh: Mapping[ScopeKey, tuple[Sighting, ...]] = field(default_factory=dict)
    base_url: str = ""
    window: float = 3600.0


def fresh_by_scope(sightings: Iterable[Sighting], *, now: float, window: float
                   ) -> dict[ScopeKey, tuple[Sighting, ...]]:
    """Appearances in (now - window, now], newest first, grouped by scope."""
    found: dict[ScopeKey, list[Sighting]] = {}
    for s in sightings:
        if s.appeared_at != SEEDED and now - window < s.appeared_at <= now:
            found.setdefault((s.scope, s.name), []).append(s)
    return {k: tuple(sorted(v, key=lambda s: (-s.appeared_at, s.fingerprint)))
            for k, v in found.items()}


@dataclass(frozen=True)
class Outcome:
    breach: bool | None
    value: float | None
    renew_after: float | None  # a trigger older than this has not announced every fresh one
    describe: Callable[[], str]


def prediction_url(base_url: str, prediction_id: str) -> str:
    return f"{base_url}/predictions/{prediction_id}"


def describe(fresh: tuple[Sighting, ...], base_url: str) -> str:
    s = fresh[0]
    where = f" on version {s.version[:8] if len(s.version) > 12 else s.version}" \
        if s.version else ""
    more = f"; {len(fresh) - 1} more new in the window" if len(fresh) > 1 else ""
    example = s.example.strip().splitlines()[0][:200] if s.example.strip() else "(no text)"
    return (f"new error{where}: {s.fingerprint[:200]} (first example: {example!r}, "
            f"{prediction_url(base_url, s.prediction_id)}){more}")


def judge_new_errors(errors: NewErrors | None, key: ScopeKey) -> Outcome:
    fresh = errors.fresh.get(key, ()) if errors is not None else ()
    if not fresh or errors is None:
        return Outcome(False, 0.0, None, lambda: "no new error fingerprints")
    base = errors.base_url
    return Outcome(True, float(len(fresh)), fresh[0].appeared_at + SETTLE,
                   lambda: describe(fresh, base))
