"""The `hookwatch` command line: its parser and one small function per command."""

from __future__ import annotations

import argparse
import asyncio
import base64
import json
import logging
import os
import secrets
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING

from hookwatch.config import ConfigError, ConfigFile, load_config
from hookwatch.logs import install as install_log_filter
from hookwatch.logs import uvicorn_log_config
from hookwatch.notifiers import testnotify
from hookwatch.settings import load_settings
from hookwatch.startup import load_all, schema_problem, settings_from, startup_banner
from hookwatch.storage.engine import redacted
from hookwatch.storage.sqlite_path import folder_problem

if TYPE_CHECKING:
    from fastapi import FastAPI

    from hookwatch.settings import Settings

DESCRIPTION = """\
hookwatch verifies Replicate and Cog prediction webhooks, records every prediction's
lifecycle, keeps rolling error rates per model, deployment and version, and pages people
by email, Slack, PagerDuty, Discord, Teams, Telegram, ntfy or a signed webhook
when a rule fires.

Settings come from HOOKWATCH_* environment variables (see README.md) and the optional
TOML config file given by --config or HOOKWATCH_CONFIG.
"""


def cmd_serve(args: argparse.Namespace) -> int:
    from hookwatch.app import create_app
    from hookwatch.heap import HeapKeeper

    try:
        settings, config = load_all(args)
    except ConfigError as exc:
        for line in exc.lines():
            print(line, file=sys.stderr)
        return 1
    from hookwatch.access import AccessError, banner_lines

    refusal = schema_problem(settings)  # first: the dashboard token lives in the data folder
    if refusal is not None:
        print(startup_banner(settings, len(config.rules), sorted(config.notifiers)), flush=True)
        print(f"database: {refusal}", file=sys.stderr)
        return 1
    try:
        app = create_app(settings, config=config)
    except AccessError as exc:
        print(f"dashboard: {exc}", file=sys.stderr)
        return 1
    access = banner_lines(app.state.runtime.access, settings.base_url,
                          listen=settings.host)
    print(startup_banner(settings, len(config.rules), sorted(config.notifiers), access),
          flush=True)
    heap = HeapKeeper()  # the event loop's share of the GIL (hookwatch.heap)
    heap.start()
    try:
        _run_server(app, settings, args)
    finally:
        heap.stop()
    return 0


def _run_server(app: FastAPI, settings: Settings, args: argparse.Namespace) -> None:
    import uvicorn

    from hookwatch.hooks.limits import LimitedHttpToolsProtocol

    uvicorn.run(
        app,
        host=settings.host,
        port=settings.port,
        log_level=args.log_level,
        access_log=args.access_log,
        log_config=uvicorn_log_config(),
        timeout_keep_alive=30,
        # No websocket routes; an upgraded connection would also leave hooks.limits' watch.
        ws="none",
        h11_max_incomplete_event_size=64 * 1024,
        # httptools ignores the h11 limit above: hooks/limits.py caps head size and time.
        http=LimitedHttpToolsProtocol.configured(request_timeout=settings.body_timeout),
    )


def cmd_secret(_args: argparse.Namespace) -> int:
    print("whsec_" + base64.b64encode(secrets.token_bytes(32)).decode())
    return 0


def cmd_check_config(args: argparse.Namespace) -> int:
    args.config = Path(args.file) if args.file else None
    if args.config is None and not os.environ.get("HOOKWATCH_CONFIG"):
        print("check-config: give a FILE or set HOOKWATCH_CONFIG", file=sys.stderr)
        return 2
    try:
        settings, config = load_all(args)
    except ConfigError as exc:
        for line in exc.lines():
            print(line, file=sys.stderr)
        return 1
    print(
        f"{settings.config}: OK ({len(config.rules)} rules, {len(config.notifiers)} notifiers:"
        f" {', '.join(sorted(config.notifiers)) or 'none'})"
    )
    return 0


def cmd_config_schema(_args: argparse.Namespace) -> int:
    schema = {"$schema": "https://json-schema.org/draft/2020-12/schema",
              **ConfigFile.model_json_schema()}
    print(json.dumps(schema, indent=2))
    return 0


def cmd_migrate(args: argparse.Namespace) -> int:
    from alembic.migration import MigrationInfo
    from sqlalchemy.exc import SQLAlchemyError

    from hookwatch.storage.engine import make_engine
    from hookwatch.storage.health import error_line
    from hookwatch.storage.migrate import head_revision, upgrade
    from hookwatch.storage.revision import SchemaOutdated, current_revision

    try:
        settings = settings_from(args)
    except ConfigError as exc:
        for line in exc.lines():
            print(line, file=sys.stderr)
        return 1
    print(f"database   {redacted(settings.database_url)}", flush=True)
    problem = folder_problem(settings.database_url)
    if problem is not None:
        print(f"database: {problem}", file=sys.stderr)
        return 1
    engine = make_engine(settings.database_url)
    began = time.monotonic()

    def step(info: MigrationInfo) -> None:
        doc = getattr(info.up_revision, "doc", "")  # the revision's message
        print(f"  applied  {info.up_revision_id}  {doc}  ({time.monotonic() - began:.2f} s)",
              flush=True)

    try:
        have = current_revision(engine)
        print(f"revision   {have or 'none (empty database)'}; this version needs {head_revision()}",
              flush=True)
        before, after = upgrade(engine, on_step=step)
    except (SQLAlchemyError, SchemaOutdated) as exc:
        print(f"migrate: failed, nothing changed: {error_line(exc)}", file=sys.stderr)
        return 1
    finally:
        engine.dispose()
    if before == after:
        print(f"schema is up to date (revision {after})")
    else:
        print(f"schema upgraded from {before or 'empty'} to {after}")
    return 0


def cmd_simulate(args: argparse.Namespace) -> int:
    from hookwatch.simulate import run, summary, wait_until_up

    secret = args.secret or None
    token = args.token or os.environ.get("HOOKWATCH_INGEST_TOKEN") or None
    if not secret and not token:
        env_secrets = os.environ.get("HOOKWATCH_WEBHOOK_SECRETS", "").split()
        secret = next((s for s in env_secrets if s.startswith("whsec_")), None)
    if not secret and not token:
        print("simulate: give --secret whsec_… or --token (or set HOOKWATCH_WEBHOOK_SECRETS)",
              file=sys.stderr)
        return 2
    rate = float(str(args.rate).removesuffix("/s"))
    if not asyncio.run(wait_until_up(args.url)):
        print(f"simulate: nothing answers at {args.url} after 10 s; is `hookwatch serve` "
              "running there?", file=sys.stderr)
        return 1
    began = time.monotonic()
    tally = asyncio.run(run(
        url=args.url, secret=secret, token=token, rate=rate, duration=args.duration,
        failure_rate=args.failure_rate, model=args.model, deployment=args.deployment,
        seed=args.seed,
    ))
    print(summary(tally, time.monotonic() - began))
    return 0 if tally.refused == 0 else 1


def cmd_demo(args: argparse.Namespace) -> int:
    from hookwatch.demo import main as demo_main

    return demo_main(args.demo_args)


def cmd_test_notify(args: argparse.Namespace) -> int:
    """One test message through one configured notifier (notifiers.testnotify)."""
    config_path = str(args.config) if getattr(args, "config", None) else None
    try:
        settings = load_settings(config=config_path,
                                 public_url=getattr(args, "public_url", None))
        config = load_config(settings.config)
    except ConfigError as exc:
        for problem in exc.problems:
            print(f"config: {problem}", file=sys.stderr)
        return 2
    except ValueError as exc:
        print(f"settings: {exc}", file=sys.stderr)
        return 2
    where = str(settings.config or "no config file (give --config or set HOOKWATCH_CONFIG)")
    if not settings.public_url:
        print(f"note: the message's links point at {settings.base_url}/ (this machine's "
              "loopback) because HOOKWATCH_PUBLIC_URL is unset; set it, [server] public_url or "
              "--public-url to the address people open", file=sys.stderr)
    return testnotify.run(args.name, config.notifiers, base_url=settings.base_url, where=where,
                          out=sys.stdout, err=sys.stderr, now=time.time())


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="hookwatch",
        description=DESCRIPTION,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)

    serve = sub.add_parser(
        "serve", help="run the service (API, writer, scheduler) in one process",
        description="Run hookwatch: the webhook receiver, the dashboard and API, the writer "
        "process and the scheduled jobs (evaluate, deliver, reconcile, prune). Settings come from "
        "HOOKWATCH_* variables and the config file's [server] table; flags win over both.",
    )
    serve.add_argument("--config", type=Path, help="TOML config file (rules, notifiers)")
    serve.add_argument("--host", help="address to listen on (default 127.0.0.1)")
    serve.add_argument("--port", type=int, help="port to listen on (default 8000)")
    serve.add_argument("--log-level", default="info",
                       choices=["critical", "error", "warning", "info", "debug"])
    serve.add_argument("--access-log", action="store_true", help="log every request")
    serve.set_defaults(func=cmd_serve)

    demo = sub.add_parser(
        "demo", help="serve + the bundled test model + traffic, to see an alert", add_help=False
    )
    demo.add_argument("demo_args", nargs=argparse.REMAINDER, help=argparse.SUPPRESS)
    demo.set_defaults(func=cmd_demo)

    sim = sub.add_parser(
        "simulate", help="send signed, Replicate-shaped lifecycle webhooks",
        description="Send Replicate-shaped prediction lifecycles (starting, processing, a "
        "terminal status) to a running hookwatch, signed like Replicate's, with a progress line. "
        "Waits up to 10 s for the URL to answer before it starts.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    sim.add_argument("--url", required=True, help="e.g. http://127.0.0.1:8000/hooks/replicate")
    sim.add_argument("--secret", help="whsec_… signing secret (default: HOOKWATCH_WEBHOOK_SECRETS)")
    sim.add_argument("--token", help="bearer token instead of a signature")
    sim.add_argument("--rate", default="50", help="webhooks per second, e.g. 200 or 200/s")
    sim.add_argument("--duration", type=float, default=10.0, help="seconds to send for")
    sim.add_argument("--failure-rate", type=float, default=0.1,
                     help="share of predictions that fail, 0 to 1")
    sim.add_argument("--model", default="acme/sdxl", help="the model every prediction names")
    sim.add_argument("--deployment", default=None,
                     help="a deployment to name as well (default: none, model only)")
    sim.add_argument("--seed", type=int, default=None,
                     help="random seed, for the same traffic twice (default: random)")
    sim.set_defaults(func=cmd_simulate)

    check = sub.add_parser(
        "check-config",
        help="validate a config file and the HOOKWATCH_* settings; one line per problem",
        description="Checks the config file (rules, notifiers, [server], [inhibit]) and every "
                    "HOOKWATCH_* environment variable, as serve would. Exit 0 when all is well, "
                    "1 with one line per problem.",
    )
    check.add_argument("file", nargs="?", help="TOML config file (default: HOOKWATCH_CONFIG)")
    check.set_defaults(func=cmd_check_config)

    schema = sub.add_parser("config-schema",
                            help="print the config file's JSON Schema (for editors)")
    schema.set_defaults(func=cmd_config_schema)

    tn = sub.add_parser("test-notify", help="send a test message through one configured notifier")
    tn.add_argument("name", help="a notifier name from the config's [notifiers.NAME]")
    tn.add_argument("--config", type=Path, help="TOML config file (default: HOOKWATCH_CONFIG)")
    tn.add_argument("--public-url", help="where the message's links point (default: "
                    "HOOKWATCH_PUBLIC_URL or [server] public_url, else this machine's port)")
    tn.set_defaults(func=cmd_test_notify)

    sec = sub.add_parser(
        "secret", help="print a new whsec_ signing secret",
        description="Print a new random Standard Webhooks secret (whsec_ and 24 random bytes in "
        "base64), for HOOKWATCH_WEBHOOK_SECRETS and `simulate --secret`.",
    )
    sec.set_defaults(func=cmd_secret)

    mig = sub.add_parser(
        "migrate", help="bring the database schema up to date",
        description="Apply the pending Alembic migrations to HOOKWATCH_DATABASE_URL, printing "
        "each step. SQLite migrates by itself at start-up; with PostgreSQL and several replicas, "
        "run this once before starting them.",
    )
    mig.add_argument("--config", type=Path, help="TOML config file (its [server] table)")
    mig.set_defaults(func=cmd_migrate)
    return parser


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["demo"]:
        # The demo parses its own flags; argparse.REMAINDER would drop a leading "--port".
        from hookwatch.demo import main as demo_main

        return demo_main(argv[1:])
    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    install_log_filter()  # a sender's newline or ESC never reaches the log raw (hookwatch.logs)
    # APScheduler announces every job it adds and runs; hookwatch's own lines say what matters.
    logging.getLogger("apscheduler").setLevel(logging.WARNING)
    logging.getLogger("alembic").setLevel(logging.WARNING)  # `migrate` prints its own steps
    # httpx logs one INFO line per request: 6,000 lines for a 30 s `simulate`.
    logging.getLogger("httpx").setLevel(logging.WARNING)
    args = build_parser().parse_args(argv)
    result: int = args.func(args)
    return result


if __name__ == "__main__":
    sys.exit(main())
