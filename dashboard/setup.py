"""Wires the dashboard into the app: static files, private mode, database metrics."""

from __future__ import annotations

import logging
import threading
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

from fastapi import FastAPI
from fastapi.staticfiles import StaticFiles

from hookwatch.dashboard.auth import Gate, PrivateMode, RedactToken
from hookwatch.dashboard.metrics import DatabaseCollector
from hookwatch.dashboard.readings import Readings
from hookwatch.dashboard.render import render
from hookwatch.runtime import Runtime

STATIC = Path(__file__).parent / "static"
log = logging.getLogger("hookwatch.dashboard")


def install(app: FastAPI, runtime: Runtime) -> None:
    """Called once by create_app, after the routers are included."""
    app.mount("/static", StaticFiles(directory=STATIC), name="static")
    readings = runtime.extras["dashboard.readings"] = Readings()
    _warm_after_start(app, runtime, readings)
    runtime.metrics.registry.register(DatabaseCollector(runtime.engine, runtime.clock))
    token = runtime.settings.dashboard_token
    if token is not None and token.get_secret_value():
        gate = Gate(token.get_secret_value())
        runtime.extras["dashboard.gate"] = gate
        app.add_middleware(
            PrivateMode,
            gate=gate,
            render_refusal=lambda path, detail: render(
                "unauthorized.html", path=path, detail=detail, oob=False
            ),
        )
        access = logging.getLogger("uvicorn.access")
        if not any(isinstance(f, RedactToken) for f in access.filters):
            access.addFilter(RedactToken())


def _warm_after_start(app: FastAPI, runtime: Runtime, readings: Readings) -> None:
    """Fill the bucket caches in the background once the app has started (after migrations),
    so the first visitor does not wait for 90 days of buckets (seconds, with 1,000 busy
    scopes: bench/bench_dashboard.py)."""
    inner = app.router.lifespan_context

    def warm() -> None:
        try:
            with runtime.engine.connect() as conn:
                readings.read(conn, now=runtime.clock())
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
