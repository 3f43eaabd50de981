"""Leadership on SQLite: the process holding an exclusive lock on `<database>.leader` leads.

Two `hookwatch serve` on one SQLite file would otherwise both evaluate and deliver, paging
twice. `flock` is held by the open file, so the kernel frees it when the process dies, however
it dies, and the next process to poll takes it: the same shape as PostgreSQL's advisory lock
(hookwatch/leader.py). The holder writes its name into the file for followers to show.
https://man7.org/linux/man-pages/man2/flock.2.html
"""

from __future__ import annotations

import fcntl
import logging
import os
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

log = logging.getLogger("hookwatch.leader")

Listener = Callable[[bool], None]
Notified = Callable[[], None]


class FileLockLeader:
    """Leads while it holds `flock(LOCK_EX)` on the lock file; followers retry every `poll` s."""

    def __init__(self, path: Path, *, name: str, poll: float = 1.0) -> None:
        self.path = path
        self.name = name
        self.poll = poll
        self._fd: int | None = None
        self._held = False
        self._holder: str | None = None
        self._listeners: list[Listener] = []
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._said_follower = False
        self.status: dict[str, Any] = self.describe()

    @property
    def is_leader(self) -> bool:
        return self._held

    def subscribe(self, listener: Listener) -> None:
        self._listeners.append(listener)
        if self._held:
            listener(True)

    def listen(self, channel_sql: str, handler: Notified) -> None:
        """Nothing to hear: SQLite has no NOTIFY. A failure counted by a follower reaches the
        leader's evaluator at its next tick rather than at once."""

    def start(self) -> None:
        self.poll_once()
        self._stop.clear()
        self._thread = threading.Thread(target=self._run, name="hookwatch-leader", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=10)
            self._thread = None
        with self._lock:
            if self._fd is not None:
                os.close(self._fd)  # closing the file releases the lock
                self._fd = None
            self._set_held(False)
            self.status.update(self.describe())

    def _run(self) -> None:
        while not self._stop.wait(self.poll):
            if not self._held:
                self.poll_once()

    def poll_once(self) -> bool:
        with self._lock:
            if not self._held:
                try:
                    self._try_take()
                except OSError as exc:
                    log.warning("cannot use the leadership lock file %s: %s", self.path,
                                exc.strerror or exc)
            self.status.update(self.describe())
            return self._held

    def _try_take(self) -> None:
        if self._fd is None:
            self._fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(self._fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            self._holder = os.pread(self._fd, 300, 0).decode(errors="replace").strip() or None
            if not self._said_follower:
                log.warning(
                    "another hookwatch process (%s) leads on this database: this one ingests and "
                    "serves, and takes over evaluation and delivery when that one stops",
                    self._holder or "unknown",
                )
                self._said_follower = True
            return
        os.ftruncate(self._fd, 0)
        os.pwrite(self._fd, self.name.encode(), 0)
        self._holder = self.name
        self._set_held(True)

    def _set_held(self, held: bool) -> None:
        if held == self._held:
            return
        self._held = held
        if held:
            log.info("this process (%s) is now the leader", self.name)
        for listener in self._listeners:
            try:
                listener(held)
            except Exception:
                log.exception("a leadership listener failed")

    def describe(self) -> dict[str, Any]:
        return {
            "role": "leader" if self._held else "follower",
            "replica": self.name,
            "leader": self._holder,
            "via": "sqlite lock file",
        }
