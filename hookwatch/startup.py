"""What `serve` checks and says before it listens: settings and config together, the
database and its folder, and the start-up banner (URLs, what is and is not configured)."""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
from pathlib import Path

from hookwatch.config import Config, ConfigError, load_config
from hookwatch.settings import Settings, load_settings
from hookwatch.storage.engine import redacted
from hookwatch.storage.sqlite_path import folder_problem


def settings_from(args: argparse.Namespace) -> Settings:
    overrides = {
        "config": getattr(args, "config", None),
        "host": getattr(args, "host", None),
        "port": getattr(args, "port", None),
    }
    return load_settings(**overrides)


def load_all(args: argparse.Namespace) -> tuple[Settings, Config]:
    """Settings (environment, [server], arguments) and the config file, every problem in both
    as one line of one ConfigError: what check-config reports is what serve refuses."""
    lines: list[str] = []
    settings: Settings | None = None
    config: Config | None = None
    try:
        settings = settings_from(args)
    except ConfigError as exc:
        lines += exc.lines()
    path = settings.config if settings is not None else (
        getattr(args, "config", None) or os.environ.get("HOOKWATCH_CONFIG") or None)
    try:
        config = load_config(Path(path) if path else None)
    except ConfigError as exc:
        lines += [line for line in exc.lines() if line not in lines]
    if lines or settings is None or config is None:
        raise ConfigError(lines)
    return settings, config


def startup_banner(
    settings: Settings, rules: int, notifiers: list[str], access: list[str] | None = None
) -> str:
    base = settings.base_url
    secrets_n = len(settings.webhook_secrets)
    lines = [
        "hookwatch is starting",
        f"  webhook URL   {base}/hooks/replicate",
        f"  dashboard     {base}/",
        f"  database      {redacted(settings.database_url)}",
        f"  signatures    {f'{secrets_n} secret(s) configured' if secrets_n else 'not configured'}"
        " (HOOKWATCH_WEBHOOK_SECRETS)",
        f"  ingest token  {'configured' if settings.ingest_token else 'not configured'}"
        " (HOOKWATCH_INGEST_TOKEN)",
        *(access or [
            f"  dashboard     {'private (token required)' if settings.dashboard_token else 'open'}"
        ]),
        f"  config        {settings.config or 'none: built-in default rules'}",
        f"  rules         {rules}",
        f"  notifiers     {', '.join(notifiers) if notifiers else 'none configured'}",
    ]
    if not settings.webhook_secrets and not settings.ingest_token:
        lines.append(
            "  WARNING: no webhook secret and no ingest token: every webhook will be refused"
            " with 401.\n           Set HOOKWATCH_WEBHOOK_SECRETS (Replicate's signing secret)"
            " or HOOKWATCH_INGEST_TOKEN."
        )
    if not settings.public_url and settings.host not in ("127.0.0.1", "localhost", "::1"):
        lines.append(
            f"  WARNING: listening on {settings.host} without HOOKWATCH_PUBLIC_URL: links in"
            f" notifications will point at {base}/,\n           which nobody else can open."
            " Set HOOKWATCH_PUBLIC_URL to the address people and Replicate use."
        )
    return "\n".join(lines)


def schema_problem(settings: Settings) -> str | None:
    """Why `serve` must not start on this database (a data folder it cannot write, an
    outdated schema, a server it cannot reach), or None."""
    from sqlalchemy.exc import SQLAlchemyError

    from hookwatch.storage.engine import make_engine
    from hookwatch.storage.health import error_line
    from hookwatch.storage.revision import SchemaOutdated, is_current, require_current

    problem = folder_problem(settings.database_url)
    if problem is not None:
        return problem
    migrates = settings.auto_migrate if settings.auto_migrate is not None else settings.is_sqlite
    engine = make_engine(settings.database_url)
    try:
        if migrates:
            return None if is_current(engine) else migrate_apart(settings.database_url)
        require_current(engine)
    except SchemaOutdated as exc:
        return str(exc)
    except SQLAlchemyError as exc:
        return f"cannot reach the database ({error_line(exc)})"
    finally:
        engine.dispose()
    return None


def migrate_apart(database_url: str) -> str | None:
    """Upgrade the schema in a child process (storage.migrate's `upgrade`): the server that
    starts next finds it current and never loads Alembic. None, or why it failed."""
    from hookwatch.storage.engine import in_memory

    if in_memory(database_url):
        return None  # only this process can see it; the app migrates it in place
    done = subprocess.run(
        [sys.executable, "-m", "hookwatch.storage.migrate", "upgrade"], input=database_url,
        capture_output=True, text=True, check=False,
    )
    if done.returncode == 0:
        return None
    reason = (done.stderr.strip().splitlines() or [f"exit status {done.returncode}"])[-1]
    return f"the schema migration failed, nothing changed ({reason})"

