"""`hookwatch serve` and `migrate` on a data folder they cannot use: one line, no traceback."""

from __future__ import annotations

import os
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import free_port


def serve(workdir: Path, url: str, *, wrap: list[str] | None = None,
          ) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "HOOKWATCH_DATABASE_URL": url, "HOOKWATCH_INGEST_TOKEN": "t" * 32}
    command = [sys.executable, "-m", "hookwatch", "serve", "--port", str(free_port())]
    return subprocess.run(
        [*(wrap or []), *command],
        cwd=workdir, env=env, capture_output=True, text=True, timeout=60,
    )


def test_a_file_where_the_data_folder_should_be(tmp_path: Path) -> None:
    (tmp_path / "data").write_text("not a folder")
    done = serve(tmp_path, "sqlite:///./data/hookwatch.db")
    assert done.returncode == 1
    assert "Traceback" not in done.stderr
    errors = [line for line in done.stderr.splitlines() if line.startswith("database:")]
    assert errors == [
        "database: the data folder data is a file, not a folder: move it away, "
        "or point HOOKWATCH_DATABASE_URL somewhere writable"
    ], done.stderr


def test_a_data_folder_this_user_cannot_write(tmp_path: Path) -> None:
    folder = tmp_path / "data"
    folder.mkdir()
    wrap: list[str] = []
    if os.geteuid() == 0:
        # root writes through permission bits, so the folder becomes a read-only bind mount in
        # a mount namespace of the server's own.
        if shutil.which("unshare") is None:
            pytest.skip("running as root without unshare(1)")
        f = shlex.quote(str(folder))
        wrap = ["unshare", "-m", "sh", "-c",
                f"mount --bind {f} {f} && mount -o remount,bind,ro {f} && exec \"$@\"", "sh"]
    else:
        folder.chmod(0o555)
    done = serve(tmp_path, f"sqlite:///{folder}/hookwatch.db", wrap=wrap)
    assert done.returncode == 1, done.stderr
    assert "Traceback" not in done.stderr
    line = next(x for x in done.stderr.splitlines() if x.startswith("database:"))
    assert f"the data folder {folder} is not writable by this user" in line


@pytest.mark.parametrize("command", ["migrate"])
def test_migrate_says_the_same(tmp_path: Path, command: str) -> None:
    (tmp_path / "data").write_text("")
    env = {**os.environ, "HOOKWATCH_DATABASE_URL": "sqlite:///./data/x.db"}
    done = subprocess.run([sys.executable, "-m", "hookwatch", command], cwd=tmp_path, env=env,
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 1 and "Traceback" not in done.stderr
    assert "is a file, not a folder" in done.stderr
