"""The group-commit writer: requests wait while their batch commits, then get their answer.

Requests queue up while the previous batch is in the database, so under load each fsync
carries many events; alone, an event commits at once. Batches are committed by the writer's
own process (storage.writer_child) when one is given, else on a thread of this one.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import deque
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from sqlalchemy import Engine

from hookwatch.storage.batch import BatchResult, NewEvent
from hookwatch.storage.health import STALL_AFTER, CommitHealth, unavailable_reason
from hookwatch.storage.rollups import Counted
from hookwatch.storage.transaction import commit_events
from hookwatch.storage.writer_child import MERGE_EVENTS, ChildConfig, ChildFailed, WriterChild

log = logging.getLogger("hookwatch.writer")

Clock = Callable[[], float]
OnCommit = Callable[[list[Counted]], None]


IN_FLIGHT = 4
"""Batches sent to the writer process before the first is answered: while one commits, the
next ones wait in the pipe, so the child never idles between batches. More in flight means
smaller batches, so more commits; measured under wrk, 4 beat 1, 2 and 3 (bench/README.md)."""


class WriterUnavailable(Exception):
    """The batch could not be committed; nothing was acknowledged."""


class Pace:
    """Whether the writer is under load: the events sent to its process in the last WINDOW
    seconds. Below FOLD_ABOVE a batch settles the process's tally (storage.deferral), so a
    trickle of webhooks finds its outcomes in the buckets by the time it is answered."""

    WINDOW = 0.1
    FOLD_ABOVE = 64

    def __init__(self) -> None:
        self._sent: deque[tuple[float, int]] = deque()
        self._total = 0

    def busy(self, now: float, events: int) -> bool:
        """Whether the events sent before these, within WINDOW, reach FOLD_ABOVE."""
        sent = self._sent
        while sent and sent[0][0] < now - self.WINDOW:
            self._total -= sent.popleft()[1]
        busy = self._total >= self.FOLD_ABOVE
        sent.append((now, events))
        self._total += events
        return busy


class Writer:
    def __init__(
        self,
        engine: Engine,
        *,
        batch_max: int = 256,
        clock: Clock = time.time,
        on_commit: OnCommit | None = None,
        retries: int = 3,
        process: ChildConfig | None = None,
        stall_after: float = STALL_AFTER,
    ) -> None:
        self._engine = engine
        # A batch for the process fits one of its transactions (writer_child.MERGE_EVENTS).
        self._batch_max = min(batch_max, MERGE_EVENTS) if process is not None else batch_max
        self._clock = clock
        self.on_commit = on_commit
        self._retries = retries
        self._child = WriterChild(process) if process is not None else None
        if self._child is not None:
            self._child.on_counted = self._counted
        self._queue: asyncio.Queue[tuple[NewEvent, asyncio.Future[bool]]] = asyncio.Queue()
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="hookwatch-writer")
        self._task: asyncio.Task[None] | None = None
        self._in_flight = IN_FLIGHT if self._child is not None else 1
        self._committing: set[asyncio.Task[None]] = set()
        self.batches = 0
        self.events = 0
        self.retried: list[str] = []  # why each retried batch failed (SQLSTATE or message)
        self.health = CommitHealth(stall_after)
        self._pace = Pace()
        self._batches: dict[int, list[tuple[NewEvent, asyncio.Future[bool]]]] = {}
        self._watch: asyncio.Task[None] | None = None

    async def start(self) -> None:
        if self._child is not None:
            try:
                await self._child.start()
            except ChildFailed as exc:  # tried again with the first batch
                log.error("the writer process did not start: %s", exc)
        self._task = asyncio.create_task(self._run(), name="hookwatch-writer")
        self._watch = asyncio.create_task(self._watch_stalls(), name="hookwatch-writer-watch")

    @property
    def process_id(self) -> int | None:
        """The writer process's id; None when batches commit in this process (or it is down)."""
        return self._child.pid if self._child is not None else None

    def describe(self) -> str:
        """For /readyz: where batches commit, and whether that is up."""
        if self._child is None:
            return "in-process"
        pid = self._child.pid
        if pid is not None:
            return f"process {pid}"
        failure = self._child.last_failure
        return f"process down ({failure})" if failure else "process not started"

    async def stop(self) -> None:
        """Commit what is queued, then stop."""
        if self._task is None:
            return
        await self._queue.join()
        for task in (self._task, self._watch):
            if task is not None:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
        self._watch = None
        self._task = None
        if self._child is not None:
            await self._child.stop()
        self._executor.shutdown(wait=True)
        log.info("writer stopped: %d events committed in %d batches", self.events, self.batches)

    async def submit(self, event: NewEvent) -> bool:
        """Wait until the event is committed; True when it was a duplicate.

        WriterUnavailable at once while a commit is stalled, and for every waiting event once
        one stalls (storage.health): the sender retries rather than waits with it."""
        if self.health.stalled:
            raise WriterUnavailable("commits are stalled")
        future: asyncio.Future[bool] = asyncio.get_running_loop().create_future()
        self._queue.put_nowait((event, future))  # each waiting request holds one entry
        return await future

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        slots = asyncio.Semaphore(self._in_flight)
        while True:
            await slots.acquire()
            items = [await self._queue.get()]
            while len(items) < self._batch_max and not self._queue.empty():
                items.append(self._queue.get_nowait())
            live = [item for item in items if not item[1].done()]
            for _ in range(len(items) - len(live)):  # answered 503 by the watch while queued
                self._queue.task_done()
            if not live:
                slots.release()
                continue
            items = live
            task = asyncio.create_task(self._commit_batch(loop, items, slots))
            self._committing.add(task)  # held, so the task is not collected mid-flight
            task.add_done_callback(self._committing.discard)

    async def _commit_batch(
        self,
        loop: asyncio.AbstractEventLoop,
        items: list[tuple[NewEvent, asyncio.Future[bool]]],
        slots: asyncio.Semaphore,
    ) -> None:
        began = time.monotonic()  # the clock /readyz reads too (not uvloop's coarse one)
        token = self.health.began(began)
        self._batches[token] = items
        failure: str | None = "no answer"
        try:
            failure = await self._commit_items(loop, items)
        finally:
            self._batches.pop(token, None)
            if self.health.stalled:
                log.warning("the stalled commit ended after %.1f s (%s); webhooks are accepted",
                            time.monotonic() - began, failure or "committed")
            self.health.ended(token, failure)
            slots.release()
            for _, future in items:
                if not future.done():  # never leave a request waiting on a lost answer
                    future.set_exception(WriterUnavailable("no answer for this event"))
                self._queue.task_done()

    async def _commit_items(
        self,
        loop: asyncio.AbstractEventLoop,
        items: list[tuple[NewEvent, asyncio.Future[bool]]],
        *,
        quiet: bool = False,
    ) -> str | None:
        """Commit and answer the items; why not, when the database refused them (a lone
        refused event is logged unless quiet: one by one, the batch logs a summary)."""
        events = [event for event, _ in items]
        try:
            # quiet: one event of a batch that failed; it must not share a transaction again.
            result = await self._commit(loop, events, alone=quiet)
        except Exception as exc:
            if len(items) > 1 and not _database_down(exc):
                # One bad event must not cost its batch-mates their answer: go one by one.
                # (Not when the database itself refuses: each would wait as long again.)
                log.error("batch of %d events not committed (%s); trying them one by one",
                          len(events), _reason(exc))
                refused = [
                    item for item in items
                    if not item[1].done()  # answered 503 meanwhile: its sender retries
                    and await self._commit_items(loop, [item], quiet=True) is not None
                ]
                if refused:
                    log.error("%d of %d events refused", len(refused), len(items))
                return None
            if not quiet:
                what = "event" if len(items) == 1 else f"batch of {len(items)} events"
                log.error("%s not committed: %s", what, _reason(exc))
            for _, future in items:
                if not future.done():
                    future.set_exception(WriterUnavailable(_reason(exc)))
            return _reason(exc)
        for (_, future), dup in zip(items, result.duplicates, strict=True):
            if not future.done():
                future.set_result(dup)
        self._counted(result.counted)
        return None

    def _counted(self, counted: list[Counted]) -> None:
        """Outcomes now in the buckets: with a commit, or with a tally written on its own."""
        if counted and self.on_commit is not None:
            try:
                self.on_commit(counted)
            except Exception:
                log.exception("on_commit hook failed")

    async def _watch_stalls(self) -> None:
        """A few times per stall_after: once the oldest commit in flight has taken that long,
        answer every waiting event 503 (queued ones are then dropped, unsent) and refuse new
        ones until a commit ends. One timer for the writer, none per request."""
        health = self.health
        while True:
            await asyncio.sleep(max(0.05, min(0.5, health.stall_after / 4)))
            age = health.stalled_for(time.monotonic())
            if age is None:
                continue
            if not health.stalled:
                health.stalled = True
                log.error("a commit has waited %.1f s; webhooks are answered 503 until it ends",
                          age)
            for items in list(self._batches.values()):
                for _, future in items:
                    if not future.done():
                        future.set_exception(WriterUnavailable("commits are stalled"))
            while not self._queue.empty():
                _, future = self._queue.get_nowait()
                if not future.done():
                    future.set_exception(WriterUnavailable("commits are stalled"))
                self._queue.task_done()

    def commit(self, events: Sequence[NewEvent]) -> BatchResult:
        """Commit in this process: one transaction, retried on deadlocks and busy locks."""
        result = commit_events(
            self._pooled, events, now=self._clock(), dialect=self._engine.dialect.name,
            retries=self._retries, retried=self.retried,
        )
        self._count(events)
        return result

    async def _commit(
        self, loop: asyncio.AbstractEventLoop, events: list[NewEvent], *, alone: bool = False
    ) -> BatchResult:
        if self._child is None:
            return await loop.run_in_executor(self._executor, self.commit, events)
        settle = not self._pace.busy(time.monotonic(), len(events))
        result, retried = await self._child.commit(events, self._clock(), alone=alone,
                                                   settle=settle)
        self.retried.extend(retried)
        self._count(events)
        return result

    def _count(self, events: Sequence[NewEvent]) -> None:
        self.batches += 1
        self.events += len(events)

    @contextlib.contextmanager
    def _pooled(self) -> Iterator[Any]:
        # A pooled DBAPI connection (the engine's PRAGMAs applied), used without SQLAlchemy's
        # per-statement machinery: this runs once per batch on the hot path.
        raw = self._engine.raw_connection()
        try:
            yield raw
        finally:
            raw.close()


def _database_down(exc: Exception) -> bool:
    """The database refused the batch as a whole (locked, unreachable, full), whatever was in it."""
    if isinstance(exc, ChildFailed):
        return str(exc) == "OperationalError"  # the child sends the error's name
    return unavailable_reason(exc) is not None


def _reason(exc: Exception) -> str:
    """What may be logged: the error's name (a driver's message can quote refused values)."""
    return str(exc) if isinstance(exc, ChildFailed) else type(exc).__name__
