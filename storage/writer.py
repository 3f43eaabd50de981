"""The group-commit writer: requests wait while their batch commits, then get their answer.

Requests queue up while the previous batch is in the database, so under load each fsync
carries many events; alone, an event commits at once.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import sqlite3
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor

import psycopg
from sqlalchemy import Engine
from sqlalchemy.exc import DBAPIError

from storage.batch import BatchResult, NewEvent, commit_batch
from storage.rollups import Counted

log = logging.getLogger("hookwatch.writer")

# Raised by the drivers themselves, since the writer talks to them without SQLAlchemy.
_DB_ERRORS: tuple[type[Exception], ...] = (DBAPIError, sqlite3.Error, psycopg.Error)

Clock = Callable[[], float]
OnCommit = Callable[[list[Counted]], None]


class WriterUnavailable(Exception):
    """The batch could not be committed; nothing was acknowledged."""


class Writer:
    def __init__(
        self,
        engine: Engine,
        *,
        batch_max: int = 256,
        clock: Clock = time.time,
        on_commit: OnCommit | None = None,
        retries: int = 3,
    ) -> None:
        self._engine = engine
        self._batch_max = batch_max
        self._clock = clock
        self.on_commit = on_commit
        self._retries = retries
        self._queue: asyncio.Queue[tuple[NewEvent, asyncio.Future[bool]]] = asyncio.Queue()
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="hookwatch-writer")
        self._task: asyncio.Task[None] | None = None
        self.batches = 0
        self.events = 0
        self.retried: list[str] = []  # why each retried batch failed (SQLSTATE or message)

    async def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="hookwatch-writer")

    async def stop(self) -> None:
        """Commit what is queued, then stop."""
        if self._task is None:
            return
        await self._queue.join()
        self._task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._task
        self._task = None
        self._executor.shutdown(wait=True)
        log.info("writer stopped: %d events committed in %d batches", self.events, self.batches)

    async def submit(self, event: NewEvent) -> bool:
        """Wait until the event is committed; True when it was a duplicate."""
        future: asyncio.Future[bool] = asyncio.get_running_loop().create_future()
        self._queue.put_nowait((event, future))  # each waiting request holds one entry
        return await future

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            items = [await self._queue.get()]
            while len(items) < self._batch_max and not self._queue.empty():
                items.append(self._queue.get_nowait())
            try:
                await self._commit_items(loop, items)
            finally:
                for _ in items:
                    self._queue.task_done()

    async def _commit_items(
        self, loop: asyncio.AbstractEventLoop, items: list[tuple[NewEvent, asyncio.Future[bool]]]
    ) -> None:
        events = [event for event, _ in items]
        try:
            result = await loop.run_in_executor(self._executor, self.commit, events)
        except Exception as exc:
            log.error("batch of %d events not committed: %s", len(events), type(exc).__name__)
            if len(items) > 1:
                # One bad event must not cost its batch-mates their answer: go one by one.
                for item in items:
                    await self._commit_items(loop, [item])
                return
            for _, future in items:
                if not future.done():
                    future.set_exception(WriterUnavailable(type(exc).__name__))
            return
        for (_, future), dup in zip(items, result.duplicates, strict=True):
            if not future.done():
                future.set_result(dup)
        if result.counted and self.on_commit is not None:
            try:
                self.on_commit(result.counted)
            except Exception:
                log.exception("on_commit hook failed")

    def commit(self, events: Sequence[NewEvent]) -> BatchResult:
        """One transaction for the batch, retried on deadlocks and serialisation failures."""
        attempt = 0
        while True:
            attempt += 1
            try:
                result = self._commit_once(events)
                self.batches += 1
                self.events += len(events)
                return result
            except _DB_ERRORS as exc:
                if attempt >= self._retries or not _retryable(exc):
                    raise
                orig = getattr(exc, "orig", exc)
                self.retried.append(getattr(orig, "sqlstate", None) or type(orig).__name__)
                time.sleep(0.01 * attempt)

    def _commit_once(self, events: Sequence[NewEvent]) -> BatchResult:
        # A pooled DBAPI connection (the engine's PRAGMAs applied), used without SQLAlchemy's
        # per-statement machinery: this runs once per batch on the hot path.
        raw = self._engine.raw_connection()
        try:
            cursor = raw.cursor()
            try:
                result = commit_batch(
                    cursor, events, now=self._clock(), dialect=self._engine.dialect.name
                )
                raw.commit()
            except BaseException:
                raw.rollback()
                raise
            finally:
                cursor.close()
        finally:
            raw.close()
        return result


def _retryable(exc: Exception) -> bool:
    orig = getattr(exc, "orig", exc)
    code = getattr(orig, "sqlstate", None)
    if code in ("40001", "40P01"):  # serialization_failure, deadlock_detected
        return True
    return "database is locked" in str(orig)
