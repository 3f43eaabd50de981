"""The dashboard's access at start-up: the token (configured, or made once and kept in the data
folder), the names hookwatch answers to, and the lines `serve` prints about them.

Like Jupyter, `serve` on a non-loopback address never runs an open dashboard: it makes a token
the first time, keeps it (mode 0600) beside the SQLite database or in HOOKWATCH_DATA_DIR, and
prints a sign-in link that works once. Restarts read the same token, so cookies stay valid.
"""

from __future__ import annotations

import ipaddress
import logging
import os
import secrets
from dataclasses import dataclass, replace
from pathlib import Path
from urllib.parse import urlsplit

from sqlalchemy.engine import make_url

from hookwatch.dashboard.policy import Access
from hookwatch.settings import Settings

TOKEN_FILE = "dashboard-token"  # noqa: S105 (a file name)
SIGN_IN_CODE_TTL = 3600.0  # the printed link works once, within the hour
log = logging.getLogger("hookwatch.access")


class AccessError(ValueError):
    """The dashboard cannot be made safe with these settings; the message says what to set."""


@dataclass(frozen=True)
class AccessPlan:
    access: Access
    token_file: Path | None = None  # where the admin token lives when hookwatch made it
    created: bool = False  # made on this start


def is_loopback(host: str) -> bool:
    """Whether a listen address reaches this machine only (127.0.0.0/8, ::1, localhost)."""
    if host.lower().rstrip(".") == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:  # a host name: it may resolve anywhere
        return False


def data_folder(settings: Settings) -> Path | None:
    if settings.data_dir is not None:
        return settings.data_dir
    if settings.is_sqlite:
        database = make_url(settings.database_url).database
        if database and database != ":memory:":
            return Path(database).absolute().parent
    return None


def stored_token(folder: Path) -> tuple[Path, str, bool]:
    """The token kept in folder (made now, 0600, if there is none): (path, token, created)."""
    try:
        return _stored_token(folder)
    except OSError as exc:
        raise AccessError(
            f"cannot keep the dashboard token in {folder} ({exc.strerror or exc}): make it "
            "writable for this user, set HOOKWATCH_DATA_DIR, or set HOOKWATCH_DASHBOARD_TOKEN"
        ) from None


def _stored_token(folder: Path) -> tuple[Path, str, bool]:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / TOKEN_FILE
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        if path.stat().st_mode & 0o077:
            os.chmod(path, 0o600)
            log.warning("access: %s was readable by others; now 0600", path)
        token = path.read_text(encoding="utf-8").strip()
        if len(token) < 16:
            raise AccessError(f"{path} holds no usable token (16 characters at least); "
                              "delete it and hookwatch makes a new one") from None
        return path, token, False
    token = secrets.token_urlsafe(32)
    with os.fdopen(fd, "w", encoding="utf-8") as out:
        out.write(token + "\n")
    return path, token, True


def _hostname(url: str | None) -> str | None:
    return urlsplit(url).hostname if url else None


def dashboard_access(settings: Settings, *, now: float) -> AccessPlan:
    """Decide the mode. Open only when nothing but this machine can reach `serve`."""
    public = settings.public_url.rstrip("/") if settings.public_url else None
    public_host = _hostname(public)
    hosts = {"localhost", *(h.lower().rstrip(".") for h in settings.allowed_hosts)}
    if public_host:
        hosts.add(public_host)
    if not is_loopback(settings.host) and settings.host not in ("0.0.0.0", "::"):  # noqa: S104
        hosts.add(settings.host.lower())
    parts = urlsplit(public) if public else None
    origin = f"{parts.scheme}://{parts.netloc}".lower() if parts else None
    base = Access(hosts=frozenset(hosts), public_origin=origin,
                  public_badges=settings.public_badges)
    admin = settings.dashboard_token.get_secret_value() if settings.dashboard_token else None
    viewer = settings.viewer_token.get_secret_value() if settings.viewer_token else None
    if admin is not None and viewer is not None and secrets.compare_digest(admin, viewer):
        raise AccessError("HOOKWATCH_VIEWER_TOKEN must differ from HOOKWATCH_DASHBOARD_TOKEN")
    if admin is not None:
        return AccessPlan(replace(base, admin_token=admin, viewer_token=viewer))
    local = is_loopback(settings.host) and (public_host is None or is_loopback(public_host))
    if local and viewer is None:
        return AccessPlan(base)
    folder = data_folder(settings)
    if folder is None:
        raise AccessError(
            "the dashboard needs a token here (hookwatch listens on "
            f"{settings.host}, not loopback only) and has no data folder to keep one in: set "
            "HOOKWATCH_DASHBOARD_TOKEN (the same on every replica) or HOOKWATCH_DATA_DIR")
    path, token, created = stored_token(folder)
    code = secrets.token_urlsafe(24)
    access = replace(base, admin_token=token, viewer_token=viewer, sign_in_code=code,
                     sign_in_until=now + SIGN_IN_CODE_TTL)
    return AccessPlan(access, token_file=path, created=created)


def banner_lines(plan: AccessPlan, base_url: str, *, listen: str = "127.0.0.1") -> list[str]:
    """What `serve` says about the dashboard: the mode and, when it made the token, the link."""
    access = plan.access
    viewer = " and a read-only viewer token" if access.viewer_token else ""
    if access.is_open:
        return ["  dashboard     open to this machine only (listening on loopback; set "
                "HOOKWATCH_DASHBOARD_TOKEN to share it)"]
    if plan.token_file is None:
        return [f"  dashboard     private: HOOKWATCH_DASHBOARD_TOKEN{viewer}"]
    made = "made now" if plan.created else "kept from an earlier start"
    lines = [
        f"  dashboard     private: token in {plan.token_file} ({made}){viewer}",
        "  sign in       open this link once (it works once, within the hour):",
        f"                {base_url}/?token={access.sign_in_code}",
    ]
    if access.public_origin is None and not is_loopback(listen):
        lines.append("                (from elsewhere, with this machine's address in place of "
                     f"{urlsplit(base_url).hostname})")
    return lines
