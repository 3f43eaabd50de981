"""The SQLite database's folder: made when missing, checked before start-up, one-line errors."""

from __future__ import annotations

import os
from pathlib import Path

from sqlalchemy.engine import make_url


def sqlite_file(url: str) -> Path | None:
    """The database file of a sqlite:/// URL; None for PostgreSQL and in-memory databases."""
    parsed = make_url(url)
    if parsed.get_backend_name() != "sqlite" or not parsed.database:
        return None
    if parsed.database == ":memory:" or parsed.database.startswith("file::memory:"):
        return None
    return Path(parsed.database)


def folder_problem(url: str) -> str | None:
    """Why the SQLite file cannot be created or written there, in one sentence, or None.

    Makes the folder when it is missing (as `make run` expects of ./data). The sentences
    name the path and the fix, where SQLite itself says only "unable to open database file".
    """
    path = sqlite_file(url)
    if path is None:
        return None
    folder = path.parent if str(path.parent) else Path(".")
    fix = "or point HOOKWATCH_DATABASE_URL somewhere writable"
    if folder.exists() and not folder.is_dir():
        return f"the data folder {folder} is a file, not a folder: move it away, {fix}"
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        return f"cannot create the data folder {folder}: {exc.strerror or exc}; {fix}"
    uid = os.getuid() if hasattr(os, "getuid") else None
    who = f"this user (uid {uid})" if uid is not None else "this user"
    # SQLite writes its -wal and -shm files beside the database, so the folder must be writable.
    if not os.access(folder, os.W_OK | os.X_OK):
        return (f"the data folder {folder} is not writable by {who}: "
                f"`chown {uid if uid is not None else '<uid>'} {folder}` on the host, {fix}")
    if path.exists() and (path.is_dir() or not os.access(path, os.R_OK | os.W_OK)):
        return f"the database file {path} is not a writable file for {who}; {fix}"
    return None
