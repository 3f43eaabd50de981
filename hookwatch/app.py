"""create_app(settings): the whole service as one ASGI app, with its lifespan."""

from __future__ import annotations

import logging
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager

from fastapi import FastAPI
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.requests import Request

from hookwatch.access import dashboard_access
from hookwatch.alerts.actions import AlertContext, get_alert_context
from hookwatch.alerts.api import router as alerts_router
from hookwatch.alerts.job import Evaluator
from hookwatch.config import Config, load_config
from hookwatch.dashboard.api import router as api_router
from hookwatch.dashboard.auth import Gate
from hookwatch.dashboard.context import Dashboard, get_dashboard
from hookwatch.dashboard.setup import install as install_dashboard
from hookwatch.hooks.budget import ByteBudget
from hookwatch.hooks.openapi import document_webhook
from hookwatch.hooks.reconcile import Reconciler, ReconcileSettings
from hookwatch.hooks.refusals import Refusals
from hookwatch.hooks.route import PATH as HOOK_PATH
from hookwatch.hooks.route import Receive, Receiver, Scope, Send, receive_webhook
from hookwatch.hooks.signature import Verifier
from hookwatch.jobs import Jobs, JobSpec
from hookwatch.leader import leadership_for, replica_name
from hookwatch.metrics import Metrics
from hookwatch.notifiers.health import HealthCollector
from hookwatch.notifiers.health import summary as health_summary
from hookwatch.notifiers.worker import DeliveryWorker
from hookwatch.nudge import Nudge
from hookwatch.runtime import (
    DELIVER_DEBOUNCE,
    EVALUATE_COST_FACTOR,
    EVALUATE_DEBOUNCE,
    EVALUATE_MIN_INTERVAL,
    Nudges,
    Runtime,
)
from hookwatch.settings import Settings
from hookwatch.storage.batch import FAILED_CHANNEL
from hookwatch.storage.engine import make_engine, writer_process_config
from hookwatch.storage.prune import PRUNE_INTERVAL, prune_old
from hookwatch.storage.revision import is_current, require_current
from hookwatch.storage.session import get_engine
from hookwatch.storage.writer import Writer

log = logging.getLogger("hookwatch")


class HookwatchApp(FastAPI):
    """FastAPI, with the webhook path answered before its middleware and routing.

    Thousands of webhooks a second are the load that matters; FastAPI's per-request stack
    (middleware chain, routing, Request/Response objects) cost more than the webhook's own work.
    """

    receiver: Receiver

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["path"] == HOOK_PATH:
            await receive_webhook(self.receiver, scope, receive, send)
            return
        await super().__call__(scope, receive, send)


def create_app(
    settings: Settings,
    *,
    clock: Callable[[], float] = time.time,
    config: Config | None = None,
    run_jobs: bool = True,
) -> FastAPI:
    """Build the app. Tests pass their own settings, clock and config; nothing reads globals."""
    config = config if config is not None else load_config(settings.config)
    runtime = build_runtime(settings, config, clock)
    engine, leader = runtime.engine, runtime.leader
    jobs = Jobs(job_specs(runtime), clock, leader)
    leader.subscribe(jobs.on_leadership)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        migrate = settings.auto_migrate if settings.auto_migrate is not None else settings.is_sqlite
        if migrate and not is_current(engine):
            from hookwatch.storage.migrate import upgrade  # Alembic: only when there is work

            upgrade(engine)
        else:
            # Replicas never migrate by themselves: `hookwatch migrate` runs once, on purpose.
            require_current(engine)
        leader.start()
        await runtime.writer.start()
        if run_jobs:
            jobs.start()
            # A failure counted by any replica's writer (its NOTIFY, storage/batch.py) nudges
            # the evaluation on the leader, as this replica's own writer does.
            leader.listen(FAILED_CHANNEL, runtime.nudges.evaluate.poke)
        try:
            yield
        finally:
            jobs.stop()
            runtime.delivery.close()
            leader.stop()
            await runtime.writer.stop()
            engine.dispose()

    app = HookwatchApp(
        title="hookwatch",
        version="0.1.0",
        summary="Replicate and Cog webhook monitoring",
        lifespan=lifespan,
        docs_url=None,  # dashboard/apidocs.py serves it from local files
        redoc_url=None,
    )
    app.receiver = runtime.receiver
    app.state.runtime = runtime
    app.state.jobs = jobs
    # The routers below the shell declare what they need as placeholder dependencies; this app
    # binds each to its own object (FastAPI's per-app dependency binding).
    app.dependency_overrides.update({
        get_engine: lambda: engine,
        get_alert_context: lambda: runtime.alerts,
        get_dashboard: lambda: runtime.dashboard,
    })
    document_webhook(app)  # the webhook skips FastAPI's routing, so its schema is added by hand
    _add_error_handlers(app)
    app.include_router(api_router)
    app.include_router(alerts_router)
    install_dashboard(app, runtime.dashboard)  # its routers, static files, the access guard
    return app


def build_runtime(settings: Settings, config: Config, clock: Callable[[], float]) -> Runtime:
    """Every package's typed object, wired: the only place that knows them all."""
    engine = make_engine(settings.database_url, sqlite_synchronous=settings.sqlite_synchronous,
                         sqlite_busy_timeout=settings.sqlite_busy_timeout)
    metrics = Metrics()
    writer = Writer(
        engine,
        batch_max=settings.batch_max,
        clock=clock,
        stall_after=settings.commit_stall_after,
        process=writer_process_config(engine, sqlite_synchronous=settings.sqlite_synchronous,
                                      sqlite_busy_timeout=settings.sqlite_busy_timeout)
        if settings.writer_process
        else None,
    )
    verifier = Verifier(
        [s.get_secret_value() for s in settings.webhook_secrets],
        settings.ingest_token.get_secret_value() if settings.ingest_token else None,
        settings.signature_tolerance,
    )
    refusals = Refusals(configured=verifier.configured)
    receiver = Receiver(
        verifier=verifier,
        writer=writer,
        clock=clock,
        max_body_bytes=settings.max_body_bytes,
        body_timeout=settings.body_timeout,
        count=metrics.webhook,
        refusals=refusals,
        budget=ByteBudget(settings.max_buffered_bytes),
    )
    evaluator = Evaluator(
        engine, rules=config.rules, base_url=settings.base_url,
        inhibit=config.inhibit.enabled, notifiers=tuple(config.notifiers),
        pricing=config.pricing,
    )
    delivery = DeliveryWorker(engine, config.notifiers, max_age=settings.delivery_max_age,
                              registry=metrics.registry)
    nudges = Nudges(  # `runtime` is bound below, before any nudge can run
        evaluate=Nudge("evaluate", lambda: runtime.evaluate(clock()),
                       debounce=EVALUATE_DEBOUNCE, min_interval=EVALUATE_MIN_INTERVAL,
                       cost_factor=EVALUATE_COST_FACTOR),
        deliver=Nudge("deliver", lambda: delivery.run(clock()), debounce=DELIVER_DEBOUNCE),
    )
    token = settings.replicate_api_token
    reconciler = Reconciler(engine, writer, ReconcileSettings(
        api_token=token.get_secret_value() if token is not None else None,
        api_url=settings.replicate_api_url,
        after=settings.reconcile_after,
        max_body_bytes=settings.max_body_bytes,
    ))
    alerts = AlertContext(rules=config.rules, base_url=settings.base_url, clock=clock,
                          wake_delivery=nudges.deliver.poke,
                          nudge_evaluation=nudges.evaluate.poke)
    # Every replica ingests and serves; the leader alone runs the leader-only jobs.
    leader = leadership_for(engine, name=replica_name(settings.port))
    # Open on loopback, or the tokens (made and kept off loopback): DESIGN.md "Access".
    access = dashboard_access(settings, now=clock())
    names = tuple(config.notifiers)
    metrics.registry.register(HealthCollector(engine, list(names), clock))
    dashboard = Dashboard(
        engine=engine, clock=clock, alerts=alerts, registry=metrics.registry,
        readiness=lambda: {"leadership": leader.status, "writer": writer.describe(),
                           "notifiers": health_summary(engine, list(names), now=clock())},
        notifiers=names,
        commits=writer.health,
        show_payloads=settings.show_payloads, refusals=refusals,
        gate=None if access.access.is_open else Gate(access.access), access=access.access,
        pricing=config.pricing,
    )
    runtime = Runtime(
        settings=settings, config=config, engine=engine, writer=writer, metrics=metrics,
        clock=clock, leader=leader, receiver=receiver, evaluator=evaluator, delivery=delivery,
        reconciler=reconciler, alerts=alerts, dashboard=dashboard, nudges=nudges,
        access=access,
    )
    writer.on_commit = runtime.counted
    reconciler.on_counted = runtime.counted  # nudges the evaluator, as a webhook's commit does
    runtime.counted_listeners.append(dashboard.listing.touch)  # the page's rows rebuild
    runtime.counted_listeners.append(
        lambda outcomes: nudges.evaluate.poke()
        if any(o.status == "failed" for o in outcomes) else None
    )
    metrics.leader.set_function(lambda: 1.0 if leader.is_leader else 0.0)
    return runtime


def job_specs(runtime: Runtime) -> list[JobSpec]:
    """The explicit list of periodic jobs; each package owns its object, the shell the list."""
    settings, engine = runtime.settings, runtime.engine
    return [
        JobSpec("reconcile", runtime.reconciler.run, settings.reconcile_interval),
        JobSpec("prune", lambda now: prune_old(engine, now=now,
                                               retention_days=settings.retention_days),
                PRUNE_INTERVAL),
        JobSpec("deliver", runtime.delivery.run, settings.deliver_interval,
                nudge=runtime.nudges.deliver, settle=runtime.delivery.wait_idle),
        JobSpec("evaluate", runtime.evaluate, settings.evaluate_interval,
                nudge=runtime.nudges.evaluate),
    ]


def _add_error_handlers(app: FastAPI) -> None:
    """Every error is {"error": code, "detail": sentence}, as the contract says."""

    @app.exception_handler(StarletteHTTPException)
    async def http_error(_request: Request, exc: StarletteHTTPException) -> JSONResponse:
        code = {401: "unauthorized", 404: "not_found", 405: "method_not_allowed"}.get(
            exc.status_code, "http_error"
        )
        detail = exc.detail if isinstance(exc.detail, str) else str(exc.detail)
        return JSONResponse(
            {"error": code, "detail": detail},
            status_code=exc.status_code,
            headers=getattr(exc, "headers", None),
        )

    @app.exception_handler(RequestValidationError)
    async def validation_error(_request: Request, exc: RequestValidationError) -> JSONResponse:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in e.get('loc', ()))}: {e.get('msg')}" for e in exc.errors()
        )
        return JSONResponse({"error": "invalid_request", "detail": problems}, status_code=422)
