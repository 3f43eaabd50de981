"""What one running service holds: settings, config, engine, writer, verifier, clock."""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import Engine

from hookwatch.config import Config
from hookwatch.hooks.signature import Verifier
from hookwatch.metrics import Metrics
from hookwatch.settings import Settings
from hookwatch.storage.rollups import Counted
from hookwatch.storage.writer import Writer

log = logging.getLogger("hookwatch")


@dataclass
class Runtime:
    settings: Settings
    config: Config
    engine: Engine
    verifier: Verifier
    writer: Writer
    metrics: Metrics
    clock: Callable[[], float]
    counted_listeners: list[Callable[[list[Counted]], None]] = field(default_factory=list)
    extras: dict[str, Any] = field(default_factory=dict)

    def counted(self, outcomes: list[Counted]) -> None:
        """Called by the writer after each commit that counted terminal outcomes."""
        for listener in self.counted_listeners:
            try:
                listener(outcomes)
            except Exception:
                log.exception("a counted-outcome listener failed")
