"""The writer process's side of a tally (storage.tally): when to fold, when to write, and the
recovery of dead writers' journals when it starts."""

from __future__ import annotations

import functools
import logging
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

from hookwatch.storage import journal, owners
from hookwatch.storage.batch import BatchResult, Cursor
from hookwatch.storage.rollups import Counted
from hookwatch.storage.tally import FLUSH_EVERY, IDLE_FLUSH, Tally
from hookwatch.storage.transaction import Connection, commit_events

log = logging.getLogger("hookwatch.writer")
T = TypeVar("T")

class Deferral:
    """This writer's tally, its owner lock, and how one round of batches is counted."""

    def __init__(self, connect: Connection, database: Path, *, dialect: str, retries: int
                 ) -> None:
        self.connect = connect
        self.database = database
        self.dialect = dialect
        self.retries = retries
        self.tally = Tally()
        self.lock = owners.OwnerLock(database)
        self.flushing = False  # this round writes the tally (set by `plan`)

    def recover(self) -> int:
        """Count what dead writers journaled (see storage.journal.recover); how many."""
        found = self._in_transaction(journal.owners)
        recovered = 0
        for owner in found:
            if owner == self.lock.token:
                continue
            with owners.if_dead(self.database, owner) as dead:
                if dead:
                    recovered += len(self._in_transaction(
                        functools.partial(journal.recover, dialect=self.dialect, owner=owner)))
        for owner in owners.strays(self.database, keep={*found, self.lock.token}):
            with owners.if_dead(self.database, owner):
                pass  # an unlocked file with no journal rows: removed
        if recovered:
            log.warning("counted %d outcomes a stopped writer had not yet written to the "
                        "buckets", recovered)
        return recovered

    def _in_transaction(self, work: Callable[[Cursor], list[T]]) -> list[T]:
        """`work`'s result, run in a committed transaction of its own."""
        out: list[T] = []
        commit_events(self.connect, [], now=0.0, dialect=self.dialect, retries=self.retries,
                      retried=[], then=lambda cur: out.__setitem__(slice(None), work(cur)))
        return out

    def due_in(self, now: float) -> float | None:
        """How long to wait for the next batch before writing the tally on its own: until it
        is due, or IDLE_FLUSH, for a pause in the webhooks is the time to catch up."""
        due = self.tally.due_in(now)
        return None if due is None else min(due, IDLE_FLUSH)

    def plan(self, settle: bool, now: float) -> None:
        """Before a round: write the tally with it when the parent has nothing else on its way
        (a lone webhook's outcome is then in the buckets when its answer is sent) or when the
        tally is due."""
        self.flushing = settle or self.tally.due_in(now) == 0.0

    def journal_owner(self) -> str | None:
        """commit_batch's `journal`: None in a flushing round, whose outcomes go straight in."""
        return None if self.flushing else self.lock.token

    def then(self) -> Callable[[Cursor], None] | None:
        if not (self.flushing and self.tally):
            return None
        tally, dialect = self.tally, self.dialect
        return lambda cur: journal.flush(cur, dialect, tally)

    def committed(self, result: BatchResult, at: float, *, flushed: bool, now: float
                  ) -> list[Counted]:
        """After a commit: the outcomes now in the buckets (for the parent's listeners)."""
        counted: list[Counted] = []
        if flushed:
            counted, self.tally = self.tally.counted, Tally()
        if result.journaled is not None:
            self.tally.add(result.journaled, result.counted, at, now=now)
        else:
            counted += result.counted
        return counted

    def flush_alone(self, now: float) -> list[Counted]:
        """Write the tally in a transaction of its own; [] (and a retry later) if that fails."""
        tally = self.tally
        try:
            commit_events(self.connect, [], now=0.0, dialect=self.dialect, retries=self.retries,
                          retried=[], then=lambda cur: journal.flush(cur, self.dialect, tally))
        except Exception as exc:
            log.error("the bucket tally was not written (%s); trying again in %.1f s",
                      type(exc).__name__, FLUSH_EVERY)
            tally.since = now
            return []
        self.tally = Tally()
        return tally.counted

    def close(self) -> None:
        self.lock.release()

