"""Prometheus collectors, one registry per app so tests and replicas never share counters."""

from __future__ import annotations

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

    def webhook(self, result: str) -> None:
        self.webhooks.labels(result).inc()
