"""The writer's own process: batches are committed there, off the event loop's GIL.

In-process, the writer thread and the event loop share one GIL, and SQLite's driver gives it
up around every step: under load each batch waited on the busy loop for most of its time
(bench/README.md has the figures). A child process commits with a core of its own, while the
parent's writer thread only sends the batch and waits, without the GIL, for the answer.

The two talk in storage.frames' frames. Batches that wait in the pipe while one commits are
committed together, in one transaction, and answered one by one in order: one fsync and one
statement per table for all of them, where a commit each cost up to twice the CPU per event
(bench/bench_batch.py: batches of 8 against 32).

On SQLite the child folds bucket increments in memory while batches keep coming (storage.tally);
after FLUSH_EVERY the fold is sealed and written a chunk per transaction, with the batches'
and in pauses between them. The answers carry the outcomes counted into the buckets, and those
of a chunk written without a batch are sent on their own as a ("counted", outcomes) frame.

The child ignores SIGINT and SIGTERM: a Ctrl-C or a signal to the process group must not kill
it while the parent still drains its queue. It exits when its stdin closes, so it never
outlives the parent.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import pickle
import signal
import sys
import time
from collections import deque
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

from hookwatch.storage import packed
from hookwatch.storage.batch import BatchResult, NewEvent
from hookwatch.storage.deferral import Deferral
from hookwatch.storage.frames import LENGTH, Frames, frame, send, widen
from hookwatch.storage.health import unavailable_reason
from hookwatch.storage.rollups import Counted
from hookwatch.storage.transaction import commit_events

log = logging.getLogger("hookwatch.writer")

START_TIMEOUT = 30.0
MERGE_MAX = 64
"""At most this many batches read from the pipe at once (MERGE_EVENTS bounds a transaction)."""
MERGE_EVENTS = 16
"""Events in one transaction, at most (a larger batch is committed whole). Under load the
parent then gets its answers in groups, and handles one group's next requests while the next
group commits; one transaction for everything waiting answered all senders at once, so the two
processes took turns (bench/README.md)."""
RESTART_AFTER = 1.0
"""After a failed start, batches are refused (503) this long before the next try: a database
that is down must not cost a process spawn per batch."""


Answer = tuple[BatchResult, list[str]]
Batch = tuple[float, list[NewEvent], bool, bool]
"""A frame to the child: the commit time, the events, whether to commit them alone, and whether
the parent has nothing else for the child (its tally is then written with them)."""


class ChildFailed(Exception):
    """The child did not commit the batch: its error's name, or how it went away."""


@dataclass
class ChildConfig:
    """How the child connects: the DBAPI driver's own arguments, then setup statements."""

    dialect: str  # sqlite | postgresql
    args: list[Any]
    kwargs: dict[str, Any]
    setup: list[str] = field(default_factory=list)  # e.g. SQLite PRAGMAs, run per connection
    retries: int = 3
    tally: bool = False  # fold bucket increments (storage.tally); SQLite files only
    checkpoint_every: int = 0  # SQLite: events between WAL checkpoints (0: SQLite's own)


class WriterChild:
    """The parent's handle: one child, started on demand, batches pipelined in order.

    It runs on the event loop, like the requests it answers: a thread between the two would
    wait for the busy loop's GIL twice a batch. Several batches may be in the pipe at once, so
    the child starts the next as soon as it has committed the last. Answers come back in the
    order sent, each to its batch's future.
    """

    def __init__(self, config: ChildConfig) -> None:
        self._config = config
        self._proc: asyncio.subprocess.Process | None = None
        self._pending: deque[asyncio.Future[Answer]] = deque()
        self._starting = asyncio.Lock()
        self._reader: asyncio.Task[None] | None = None
        self._failed_at: float | None = None  # monotonic time of the last failed start
        self.last_failure: str | None = None
        self.on_counted: Callable[[list[Counted]], None] | None = None  # a tally written alone

    async def start(self) -> None:
        await self._started()

    @property
    def pid(self) -> int | None:
        """The running child's process id, if one runs."""
        proc = self._proc
        return proc.pid if proc is not None and proc.returncode is None else None

    async def commit(self, events: Sequence[NewEvent], now: float, *, alone: bool = False,
                     settle: bool = True) -> Answer:
        """The batch's result and the reasons for any retries; ChildFailed if not committed.

        The child may commit it in one transaction with other batches waiting in the pipe;
        `alone`: never (one suspect event must not take good ones down with it). `settle`:
        nothing else is on its way, so a tally waits no longer (storage.deferral).
        """
        proc = await self._started()
        assert proc.stdin is not None
        data = frame((now, list(events), alone, settle))  # before the future is queued: may raise
        future: asyncio.Future[Answer] = asyncio.get_running_loop().create_future()
        # Appended and written with no await between: the pipe's order is the futures' order.
        self._pending.append(future)
        proc.stdin.write(data)
        # If the child is gone, its reader fails every pending future, this one too.
        with contextlib.suppress(ConnectionError):
            await proc.stdin.drain()  # waits while the pipe is full
        return await future

    async def stop(self, timeout: float = 10.0) -> None:
        proc, self._proc = self._proc, None
        if proc is None:
            return
        assert proc.stdin is not None
        proc.stdin.close()  # the child answers what it has, then exits
        try:
            await asyncio.wait_for(proc.wait(), timeout)
        except TimeoutError:
            proc.kill()
            await proc.wait()
        if self._reader is not None:
            await self._reader

    async def _started(self) -> asyncio.subprocess.Process:
        async with self._starting:
            if self._proc is not None and self._proc.returncode is None:
                return self._proc
            if self._failed_at is not None and time.monotonic() - self._failed_at < RESTART_AFTER:
                raise ChildFailed(f"the writer process is down ({self.last_failure})")
            proc = await asyncio.create_subprocess_exec(
                sys.executable, "-m", "hookwatch.storage.writer_child",
                stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE,
            )
            assert proc.stdin is not None
            widen(proc.stdin.get_extra_info("pipe"))
            try:
                # The config carries the password: over the pipe, never on the command line.
                proc.stdin.write(frame(self._config))
                await proc.stdin.drain()
                answer = await asyncio.wait_for(_read_frame(proc), START_TIMEOUT)
            except (ConnectionError, asyncio.IncompleteReadError, TimeoutError):
                answer = ("error", "the writer process did not start")
            if answer[0] != "ready":
                with contextlib.suppress(ProcessLookupError):
                    proc.kill()
                await proc.wait()
                self._failed_at, self.last_failure = time.monotonic(), answer[1]
                raise ChildFailed(answer[1])
            self._failed_at = self.last_failure = None
            self._proc = proc
            self._pending = deque()
            self._reader = asyncio.create_task(self._read_answers(proc, self._pending))
            log.debug("writer process %d started", proc.pid)
            return proc

    async def _read_answers(
        self, proc: asyncio.subprocess.Process, pending: deque[asyncio.Future[Answer]]
    ) -> None:
        try:
            while True:
                answer = await _read_frame(proc)
                if answer[0] == "counted":
                    if self.on_counted is not None:
                        self.on_counted(answer[1])
                    continue
                future = pending.popleft()
                if future.done():
                    continue
                if answer[0] == "ok":
                    future.set_result((answer[1], answer[2]))
                else:
                    future.set_exception(ChildFailed(answer[1]))
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            if self._proc is proc:
                self._proc = None  # no batch goes to this child any more
            for future in pending:
                if not future.done():
                    future.set_exception(ChildFailed("the writer process exited"))
            pending.clear()
            with contextlib.suppress(ProcessLookupError):
                proc.kill()
            await proc.wait()


async def _read_frame(proc: asyncio.subprocess.Process) -> Any:
    assert proc.stdout is not None
    head = await proc.stdout.readexactly(LENGTH.size)
    data = await proc.stdout.readexactly(LENGTH.unpack(head)[0])
    return pickle.loads(data)  # noqa: S301 - a private pipe between our own two processes


def _connect(config: ChildConfig) -> Any:
    if config.dialect == "sqlite":
        import sqlite3

        conn: Any = sqlite3.connect(*config.args, **config.kwargs)
        packed.register(conn)
    else:
        import psycopg

        conn = psycopg.connect(*config.args, **config.kwargs)
    cursor = conn.cursor()
    for statement in config.setup:
        cursor.execute(statement)
    cursor.close()
    conn.commit()
    return conn


class _Connection:
    """The child's one connection, opened again after it breaks."""

    def __init__(self, config: ChildConfig) -> None:
        self.config = config
        self.conn: Any = _connect(config)
        self._since_checkpoint = 0

    def checkpoint_due(self, events: int) -> bool:
        """SQLite: whether to copy the WAL back now, `events` more having been committed.

        The child's connection never checkpoints in its commits (`wal_autocheckpoint=0`, see
        storage.engine): SQLite would do it inside the commit that crossed its threshold,
        before that batch is answered. Here it runs once the answers are sent, while the parent
        reads them. https://www.sqlite.org/wal.html#automatic_checkpoint
        """
        if self.config.checkpoint_every <= 0:
            return False
        self._since_checkpoint += events
        return self._since_checkpoint >= self.config.checkpoint_every

    def checkpoint(self) -> None:
        self._since_checkpoint = 0
        try:
            with self.lend() as conn:
                conn.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchall()
        except Exception as exc:  # a reader in the way: the next one catches up
            log.warning("WAL checkpoint failed: %s", type(exc).__name__)

    @contextlib.contextmanager
    def lend(self) -> Iterator[Any]:
        if self.conn is None or getattr(self.conn, "closed", False):
            self.conn = _connect(self.config)
        try:
            yield self.conn
        except Exception:
            if getattr(self.conn, "closed", False):
                self.conn = None
            raise


def _die_with_parent() -> None:
    """Linux: killed when the parent dies, even mid-commit (the transaction rolls back, and
    nothing in it was acknowledged). Elsewhere the closed pipe ends it between batches."""
    if not sys.platform.startswith("linux"):
        return
    import ctypes

    pr_set_pdeathsig = 1  # <linux/prctl.h>
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL(None, use_errno=True).prctl(pr_set_pdeathsig, signal.SIGKILL)
    if os.getppid() == 1:  # the parent died before the call: nobody is left to answer
        sys.exit(0)


def main() -> int:
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    _die_with_parent()
    stdin = Frames(sys.stdin.fileno())
    # The frames get stdout to themselves: anything else printed goes to stderr instead.
    stdout = os.fdopen(os.dup(sys.stdout.fileno()), "wb")
    os.dup2(sys.stderr.fileno(), sys.stdout.fileno())
    try:
        config: ChildConfig = stdin.one()
    except EOFError:
        return 0
    try:
        connection = _Connection(config)
        deferral = None
        if config.tally:
            deferral = Deferral(connection.lend, Path(config.args[0]),
                                dialect=config.dialect, retries=config.retries)
            deferral.recover()
    except Exception as exc:
        send(stdout, ("error", f"cannot connect: {type(exc).__name__}"))
        return 1
    send(stdout, ("ready",))
    try:
        _serve(stdin, stdout, connection, deferral)
    finally:
        if deferral is not None:
            deferral.close()
    return 0


def _serve(stdin: Frames, stdout: IO[bytes], connection: _Connection,
           deferral: Deferral | None) -> None:
    backlog: deque[Batch] = deque()  # batches read, not yet committed (MERGE_EVENTS)
    while True:
        if backlog:
            backlog.extend(stdin.ready(MERGE_MAX))
        else:
            due = deferral.due_in(time.monotonic()) if deferral is not None else None
            got: list[Batch] | None = stdin.waiting(MERGE_MAX, due)
            if deferral is not None and not got:
                # A pause in the batches, or the parent leaving ([]): everything left then.
                counted = deferral.flush_alone(time.monotonic(), everything=got is not None)
                if counted:
                    send(stdout, ("counted", counted))
            if got is None:
                continue
            if not got:
                return
            backlog.extend(got)
        waiting = [backlog.popleft()]
        events = len(waiting[0][1])
        while backlog and events + len(backlog[0][1]) <= MERGE_EVENTS:
            events += len(backlog[0][1])
            waiting.append(backlog.popleft())
        if deferral is not None:
            deferral.plan(any(batch[3] for batch in waiting), time.monotonic())
        answers: list[Any] = []
        group: list[Batch] = []
        for batch in waiting:
            if batch[2]:  # to be committed alone (the parent is isolating a bad event)
                answers += (_commit_merged(connection, group, deferral)
                            + _commit_merged(connection, [batch], deferral))
                group = []
            else:
                group.append(batch)
        answers += _commit_merged(connection, group, deferral)
        stdout.write(b"".join(frame(answer) for answer in answers))
        stdout.flush()
        if connection.checkpoint_due(events):
            connection.checkpoint()


def _commit_merged(connection: _Connection, batches: list[Batch], deferral: Deferral | None
                   ) -> list[Any]:
    """One transaction for batches that waited together; one answer per batch, in order.

    The merged batch is committed at the latest batch's time. The outcomes it put in the
    buckets (with a tally: those the tally wrote with it) are reported with the first answer
    (the parent hands them on once per commit). If the merged transaction fails, each batch
    is committed on its own; one that fails gets the error, and the parent retries its events
    one by one.
    """
    if not batches:
        return []
    events = [event for _, batch, *_ in batches for event in batch]
    retried: list[str] = []
    now = max(b[0] for b in batches)
    then = deferral.then() if deferral is not None else None
    try:
        result = commit_events(connection.lend, events, now=now,
                               dialect=connection.config.dialect,
                               retries=connection.config.retries, retried=retried,
                               journal=deferral.journal_owner() if deferral else None,
                               then=then)
    except Exception as exc:
        if len(batches) > 1 and unavailable_reason(exc) is None:
            # Something in one batch was refused: the others must not share its fate (a
            # refusal of the whole database would only repeat per batch).
            return [a for batch in batches for a in _commit_merged(connection, [batch], deferral)]
        # The name only: a driver's message can quote the values it refused.
        return [("error", type(exc).__name__)] * len(batches)
    counted = result.counted if deferral is None else deferral.committed(
        result, now, flushed=then is not None, now=time.monotonic())
    answers: list[Any] = []
    at = 0
    for i, (_, batch, *_) in enumerate(batches):
        part = BatchResult(result.duplicates[at : at + len(batch)], counted if i == 0 else [])
        answers.append(("ok", part, retried if i == 0 else []))
        at += len(batch)
    return answers

if __name__ == "__main__":
    sys.exit(main())
