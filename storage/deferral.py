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
from hookwatch.storage.tally import (
    CHUNK_ROWS,
    FLUSH_EVERY,
    IDLE_FLUSH,
    SETTLE_KEYS,
    Sealed,
    Tally,
)
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
        self.sealed: Sealed | None = None  # a due tally being written a chunk a round
        self.flushes = 0
        self.settle = False  # this round writes everything (set by `plan`)
        self._stop = 0  # how far this round's transaction writes the sealed fold
        self._retry_at = 0.0  # monotonic: a chunk written alone failed, not again before

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
        """How long to wait for the next batch before writing on its own: no wait while a
        sealed fold has chunks left (the pause is the time to write one), else until the tally
        is due, or IDLE_FLUSH, for a pause in the webhooks is the time to catch up."""
        if self.sealed is not None:
            return max(0.0, self._retry_at - now)
        due = self.tally.due_in(now)
        return None if due is None else min(due, IDLE_FLUSH)

    def plan(self, settle: bool, now: float) -> None:
        """Before a round: write everything with it when the parent has nothing else on its
        way (a lone webhook's outcome is then in the buckets when its answer is sent) and what
        is left is small; else seal the tally once due, and write the next chunk of the sealed
        fold."""
        # Traffic resuming after a lull finds a fold left from the burst before it: chunks,
        # not all of it in front of the first answers (92 ms at the start of a bench run).
        self.settle = settle and self.sealed is None and self.tally.keys <= SETTLE_KEYS
        if not self.settle and self.sealed is None and (
                self.tally.due_in(now) == 0.0 or (settle and self.tally)):
            self._seal()

    def _seal(self) -> None:
        self.flushes += 1
        self.sealed = Sealed.of(self.tally, f"{self.lock.token}-{self.flushes}")
        self.tally = Tally()

    def journal_owner(self) -> str | None:
        """commit_batch's `journal`: None in a settling round, whose outcomes go straight in."""
        return None if self.settle else self.lock.token

    def then(self) -> Callable[[Cursor], None] | None:
        """What the round's transaction writes besides its batch; sets what `committed` will
        take as written."""
        sealed, tally, dialect, owner = self.sealed, self.tally, self.dialect, self.lock.token
        self._stop = 0
        if sealed is not None:
            self._stop = sealed.total if self.settle else sealed.next_stop(CHUNK_ROWS)
        if sealed is None and not (self.settle and tally):
            return None
        stop, whole = self._stop, self.settle

        def write(cur: Cursor) -> None:
            if sealed is not None:
                journal.write_chunk(cur, dialect, sealed, owner, stop)
            if whole:
                journal.flush(cur, dialect, tally)
        return write

    def committed(self, result: BatchResult, at: float, *, flushed: bool, now: float
                  ) -> list[Counted]:
        """After a commit: the outcomes now in the buckets (for the parent's listeners)."""
        counted: list[Counted] = []
        if flushed:
            counted = self._written(self._stop, whole=self.settle)
        if result.journaled is not None:
            self.tally.add(result.journaled, result.counted, at, now=now)
        else:
            counted += result.counted
        return counted

    def _written(self, stop: int, *, whole: bool) -> list[Counted]:
        """The sealed fold written up to `stop`, and the tally too when `whole`: what is now
        in the buckets."""
        counted: list[Counted] = []
        sealed = self.sealed
        if sealed is not None:
            sealed.written, sealed.stored = stop, True
            if stop >= sealed.total:
                counted, self.sealed = sealed.counted, None
        if whole:
            counted, self.tally = counted + self.tally.counted, Tally()
        return counted

    def flush_alone(self, now: float, *, everything: bool = False) -> list[Counted]:
        """In a pause: the next chunk of the sealed fold (sealing the tally first), in a
        transaction of its own, or everything as the parent leaves; [] (and a retry later) if
        that fails. A chunk, not the whole tally: the pause may be a gap of a few ms in heavy
        traffic, and writing 0.5 s of it at once held the next batches 150-220 ms."""
        if not everything and self.sealed is None and self.tally:
            self._seal()
        self.settle = everything
        then = self.then()
        if then is None:
            return []
        try:
            commit_events(self.connect, [], now=0.0, dialect=self.dialect, retries=self.retries,
                          retried=[], then=then)
        except Exception as exc:
            log.error("the bucket tally was not written (%s); trying again in %.1f s",
                      type(exc).__name__, FLUSH_EVERY)
            if self.tally:
                self.tally.since = now
            self._retry_at = now + FLUSH_EVERY
            return []
        return self._written(self._stop, whole=self.settle)

    def close(self) -> None:
        self.lock.release()

