"""hookwatch/access.py: when the dashboard is open, where the made token lives, and the
Dockerfile's defaults (which must give a private dashboard)."""

from __future__ import annotations

import os
import re
import stat
from pathlib import Path

import pytest

from hookwatch.access import (
    TOKEN_FILE,
    AccessError,
    banner_lines,
    dashboard_access,
    data_folder,
    is_loopback,
)
from hookwatch.settings import Settings

ROOT = Path(__file__).resolve().parents[2]


def _settings(tmp_path: Path, **values: object) -> Settings:
    return Settings(database_url=f"sqlite:///{tmp_path}/db/hookwatch.db", **values)  # type: ignore[arg-type]


def test_loopback_addresses() -> None:
    for host in ("127.0.0.1", "127.0.0.2", "127.255.255.254", "::1", "[::1]", "localhost",
                 "LOCALHOST."):
        assert is_loopback(host), host
    for host in ("0.0.0.0", "::", "10.0.0.1", "192.168.1.2", "hooks.example.com",
                 "127.0.0.1.nip.io", "::ffff:10.0.0.1", ""):
        assert not is_loopback(host), host


def test_open_only_on_loopback_with_no_public_name(tmp_path: Path) -> None:
    assert dashboard_access(_settings(tmp_path), now=0).access.is_open
    assert dashboard_access(_settings(tmp_path, host="127.0.0.2"), now=0).access.is_open
    assert dashboard_access(_settings(tmp_path, public_url="http://localhost:8000"),
                            now=0).access.is_open
    assert not (tmp_path / "db" / TOKEN_FILE).exists()
    for values in ({"host": "0.0.0.0"}, {"host": "10.1.2.3"},
                   {"public_url": "https://hooks.example.com"},
                   {"viewer_token": "a-viewer-token-of-some-length"}):
        plan = dashboard_access(_settings(tmp_path, **values), now=0)
        assert not plan.access.is_open, values
        assert plan.token_file == tmp_path / "db" / TOKEN_FILE


def test_the_made_token_is_0600_kept_and_its_code_works_within_the_hour(tmp_path: Path) -> None:
    first = dashboard_access(_settings(tmp_path, host="0.0.0.0"), now=1000.0)
    assert first.created and first.token_file is not None
    assert stat.S_IMODE(first.token_file.stat().st_mode) == 0o600
    again = dashboard_access(_settings(tmp_path, host="0.0.0.0"), now=2000.0)
    assert not again.created and again.access.admin_token == first.access.admin_token
    assert again.access.sign_in_code != first.access.sign_in_code
    assert again.access.sign_in_until == 2000.0 + 3600
    lines = "\n".join(banner_lines(again, "https://hooks.example.com"))
    assert "kept from an earlier start" in lines and str(first.token_file) in lines
    assert f"https://hooks.example.com/?token={again.access.sign_in_code}" in lines
    assert str(again.access.admin_token) not in lines
    remote = "\n".join(banner_lines(again, "http://127.0.0.1:8000", listen="0.0.0.0"))
    assert "this machine's address in place of 127.0.0.1" in remote

    os.chmod(first.token_file, 0o644)  # loosened by hand: tightened again
    dashboard_access(_settings(tmp_path, host="0.0.0.0"), now=0)
    assert stat.S_IMODE(first.token_file.stat().st_mode) == 0o600
    first.token_file.write_text("short\n")
    with pytest.raises(AccessError, match="no usable token"):
        dashboard_access(_settings(tmp_path, host="0.0.0.0"), now=0)


def test_a_folder_it_cannot_write_is_one_clear_error(tmp_path: Path) -> None:
    blocker = tmp_path / "not-a-folder"
    blocker.write_text("x")
    with pytest.raises(AccessError, match=r"cannot keep the dashboard token in .*not-a-folder"):
        dashboard_access(Settings(database_url="postgresql+psycopg://u@db/h", host="0.0.0.0",
                                  data_dir=blocker), now=0)


def test_a_configured_token_wins_and_nothing_is_written(tmp_path: Path) -> None:
    plan = dashboard_access(_settings(tmp_path, host="0.0.0.0", dashboard_token="t" * 20,
                                      public_url="https://Hooks.Example.com/x/"), now=0)
    assert plan.access.admin_token == "t" * 20 and plan.token_file is None
    assert plan.access.public_origin == "https://hooks.example.com"
    assert "hooks.example.com" in plan.access.hosts
    assert not (tmp_path / "db").exists()
    with pytest.raises(AccessError, match="must differ"):
        dashboard_access(_settings(tmp_path, dashboard_token="t" * 20, viewer_token="t" * 20),
                         now=0)


def test_postgresql_needs_a_token_or_a_data_dir_off_loopback(tmp_path: Path) -> None:
    pg = "postgresql+psycopg://u@db/h"
    assert data_folder(Settings(database_url=pg)) is None
    assert dashboard_access(Settings(database_url=pg), now=0).access.is_open  # loopback
    with pytest.raises(AccessError, match="HOOKWATCH_DATA_DIR"):
        dashboard_access(Settings(database_url=pg, host="0.0.0.0"), now=0)
    plan = dashboard_access(Settings(database_url=pg, host="0.0.0.0", data_dir=tmp_path),
                            now=0)
    assert plan.token_file == tmp_path / TOKEN_FILE


def test_the_dockerfiles_defaults_give_a_private_dashboard(tmp_path: Path) -> None:
    text = (ROOT / "Dockerfile").read_text()
    block = re.search(r"^ENV (.*?)(?=^\S)", text, re.S | re.M)
    assert block is not None
    env = dict(re.findall(r"(HOOKWATCH_\w+)=(\S+)", block.group(1)))
    assert env["HOOKWATCH_HOST"] == "0.0.0.0"
    values = {k.removeprefix("HOOKWATCH_").lower(): v.replace("/data", str(tmp_path))
              for k, v in env.items()}
    plan = dashboard_access(Settings(**values), now=0)  # type: ignore[arg-type]
    assert not plan.access.is_open
    assert plan.token_file == tmp_path / TOKEN_FILE
