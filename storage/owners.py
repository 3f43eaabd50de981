"""Which writer processes are alive: each holds `flock` on a file of its own beside the database.

A tally's journal rows (storage.tally) may be counted again only once their writer is dead,
and SQLite lets several `hookwatch serve` share one file. The kernel frees a `flock` when its
holder dies, however it dies (https://man7.org/linux/man-pages/man2/flock.2.html), so a lock
that can be taken names a dead writer. The file is locked before it gets its final name: a
file under that name is never unlocked while its writer lives.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import secrets
from collections.abc import Iterator
from pathlib import Path

SUFFIX = ".writer-"


def _path(database: Path, owner: str) -> Path:
    return database.with_name(database.name + SUFFIX + owner)


class OwnerLock:
    """This writer's token and its held lock file; `release` when it exits cleanly."""

    def __init__(self, database: Path) -> None:
        self.token = secrets.token_hex(8)
        self.path = _path(database, self.token)
        staging = self.path.with_name(self.path.name + ".new")
        self._fd = os.open(staging, os.O_RDWR | os.O_CREAT | os.O_EXCL, 0o600)
        fcntl.flock(self._fd, fcntl.LOCK_EX)
        os.rename(staging, self.path)

    def release(self) -> None:
        with contextlib.suppress(OSError):
            self.path.unlink()
        with contextlib.suppress(OSError):
            os.close(self._fd)


@contextlib.contextmanager
def if_dead(database: Path, owner: str) -> Iterator[bool]:
    """True (and the owner's lock held until the block ends, its file then removed) when that
    writer is dead; False while it lives, or while another process recovers it."""
    path = _path(database, owner)
    try:
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
    except OSError:
        yield False
        return
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            yield False
            return
        yield True
        with contextlib.suppress(OSError):
            path.unlink()
    finally:
        os.close(fd)


def strays(database: Path, *, keep: set[str]) -> list[str]:
    """Owners whose lock files lie beside the database, but for `keep` (those with journal
    rows, recovered first, and this writer's own)."""
    prefix = database.name + SUFFIX
    return [p.name[len(prefix):] for p in database.parent.glob(prefix + "*")
            if not p.name.endswith(".new") and p.name[len(prefix):] not in keep]
