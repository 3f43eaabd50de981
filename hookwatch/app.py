"""create_app(settings): the whole service as one ASGI app, with its lifespan."""

from __future__ import annotations

import logging
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager

from fastapi import APIRouter, FastAPI
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.requests import Request

from hookwatch.config import Config, load_config
from hookwatch.hooks.openapi import document_webhook
from hookwatch.hooks.route import PATH as HOOK_PATH
from hookwatch.hooks.route import Receive, Scope, Send, receive_webhook
from hookwatch.hooks.signature import Verifier
from hookwatch.jobs import Jobs
from hookwatch.leader import leadership_for, replica_name
from hookwatch.metrics import Metrics
from hookwatch.notifiers.worker import start_delivery, stop_delivery
from hookwatch.runtime import Runtime
from hookwatch.settings import Settings
from hookwatch.storage.engine import make_engine, writer_process_config
from hookwatch.storage.migrate import require_current, upgrade
from hookwatch.storage.writer import Writer

log = logging.getLogger("hookwatch")


class HookwatchApp(FastAPI):
    """FastAPI, with the webhook path answered before its middleware and routing.

    Thousands of webhooks a second are the load that matters; FastAPI's per-request stack
    (middleware chain, routing, Request/Response objects) cost more than the webhook's own work.
    """

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["path"] == HOOK_PATH:
            await receive_webhook(self.state.runtime, scope, receive, send)
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
    engine = make_engine(settings.database_url, sqlite_synchronous=settings.sqlite_synchronous)
    verifier = Verifier(
        [s.get_secret_value() for s in settings.webhook_secrets],
        settings.ingest_token.get_secret_value() if settings.ingest_token else None,
        settings.signature_tolerance,
    )
    runtime = Runtime(
        settings=settings,
        config=config,
        engine=engine,
        verifier=verifier,
        writer=Writer(
            engine,
            batch_max=settings.batch_max,
            clock=clock,
            process=writer_process_config(engine, sqlite_synchronous=settings.sqlite_synchronous)
            if settings.writer_process
            else None,
        ),
        metrics=Metrics(),
        clock=clock,
    )
    runtime.writer.on_commit = runtime.counted
    # Every replica ingests and serves; the leader alone runs the leader-only jobs.
    leader = leadership_for(engine, name=replica_name(settings.port))
    jobs = Jobs(runtime, leader)
    leader.subscribe(jobs.on_leadership)
    runtime.extras["leader"] = leader
    runtime.extras.setdefault("readiness", {})["leadership"] = leader.status
    runtime.metrics.leader.set_function(lambda: 1.0 if leader.is_leader else 0.0)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        migrate = settings.auto_migrate if settings.auto_migrate is not None else settings.is_sqlite
        if migrate:
            upgrade(engine)
        else:
            # Replicas never migrate by themselves: `hookwatch migrate` runs once, on purpose.
            require_current(engine)
        leader.start()
        await runtime.writer.start()
        if run_jobs:
            jobs.start()
            start_delivery(runtime)
        try:
            yield
        finally:
            jobs.stop()
            stop_delivery(runtime)
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
    app.state.runtime = runtime
    app.state.jobs = jobs
    document_webhook(app)  # the webhook skips FastAPI's routing, so its schema is added by hand
    _add_error_handlers(app)
    for router in _routers():
        app.include_router(router)
    from hookwatch.dashboard.setup import install as install_dashboard

    install_dashboard(app, runtime)  # static files, private mode, database metrics
    return app


def _routers() -> list[APIRouter]:
    from hookwatch.alerts.api import router as alerts_router
    from hookwatch.dashboard.api import router as api_router
    from hookwatch.dashboard.apidocs import router as docs_router
    from hookwatch.dashboard.pages import router as pages_router

    return [api_router, alerts_router, pages_router, docs_router]


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
