"""Prometheus collectors, one registry per app so tests and replicas never share counters."""

from __future__ import annotations

from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge


class Metrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.webhooks = Counter(
            "hookwatch_webhooks_received",
            "Webhooks received, by result (recorded, duplicate, or the refusal code).",
            ["result"],
            registry=self.registry,
        )
        self.leader = Gauge(
            "hookwatch_leader",
            "1 while this replica is the leader (runs evaluate, deliver, reconcile, prune).",
            registry=self.registry,
        )

        self._webhook_results: dict[str, Any] = {}

    def webhook(self, result: str) -> None:
        # labels() builds and looks up a key each call; the children are kept (results are
        # a fixed, small set of codes), since this runs for every webhook.
        child = self._webhook_results.get(result)
        if child is None:
            child = self._webhook_results[result] = self.webhooks.labels(result)
        child.inc()
