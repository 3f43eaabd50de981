"""Wires the dashboard into the app: its routers, static files, the access guard, database
metrics, and the warm-up of its caches."""

from __future__ import annotations

import logging
import threading
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

from fastapi import FastAPI
from fastapi.staticfiles import StaticFiles

from hookwatch.dashboard import (
    actions,
    alert_page,
    apidocs,
    auth_routes,
    metrics,
    model_page,
    pages,
    status_api,
)
from hookwatch.dashboard.auth import RedactToken
from hookwatch.dashboard.context import Dashboard
from hookwatch.dashboard.csrf import Csrf
from hookwatch.dashboard.guard import Guard
from hookwatch.dashboard.metrics import DatabaseCollector
from hookwatch.dashboard.nosniff import NoSniff
from hookwatch.dashboard.render import render

STATIC = Path(__file__).parent / "static"
log = logging.getLogger("hookwatch.dashboard")


def install(app: FastAPI, board: Dashboard) -> None:
    """Called once by create_app, after the JSON APIs' routers are included."""
    for module in (status_api, metrics, actions, alert_page, auth_routes, pages, model_page,
                   apidocs):
        app.include_router(module.router)
    app.mount("/static", StaticFiles(directory=STATIC), name="static")
    _warm_after_start(app, board)
    board.registry.register(DatabaseCollector(board.engine, board.clock))
    # Every request of people passes the guard (dashboard/guard.py); the shell decided the
    # access (hookwatch/access.py) and built the gate from it.
    app.add_middleware(
        Guard, access=board.access, gate=board.gate, clock=board.clock, limiter=board.limiter,
        csrf=Csrf(board.access.admin_token),
        render=lambda name, path, detail: render(name, path=path, detail=detail, oob=False),
    )
    uvicorn_access = logging.getLogger("uvicorn.access")
    if not any(isinstance(f, RedactToken) for f in uvicorn_access.filters):
        uvicorn_access.addFilter(RedactToken())
    app.add_middleware(NoSniff)  # outermost: the guard's refusals get it too


def _warm_after_start(app: FastAPI, board: Dashboard) -> None:
    """Fill the bucket caches in the background once the app has started (after migrations),
    so the first visitor does not wait for 90 days of buckets (seconds, with 1,000 busy
    scopes: bench/bench_dashboard.py)."""
    inner = app.router.lifespan_context

    def warm() -> None:
        try:
            with board.engine.connect() as conn:
                board.readings.read(conn, now=board.clock())
        except Exception as exc:  # the page reads them itself on the first visit
            log.warning("dashboard: warming the caches failed (%s)", type(exc).__name__)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[Any]:
        async with inner(app) as state:
            thread = threading.Thread(target=warm, name="dashboard-warm", daemon=True)
            thread.start()
            try:
                yield state
            finally:
                thread.join(timeout=10)

    app.router.lifespan_context = lifespan
