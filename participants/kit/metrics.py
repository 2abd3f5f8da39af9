"""Prometheus metrics of one service, kept in that service's own registry.

Several services may run in one process (``saga up``), so nothing here touches
prometheus-client's global registry: each app gets a :class:`KitMetrics` with a
private :class:`~prometheus_client.CollectorRegistry`, served at ``/metrics``.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field

from fastapi import APIRouter, Request, Response
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Histogram
from prometheus_client.exposition import generate_latest
from starlette.types import ASGIApp, Message, Receive, Scope, Send


@dataclass
class KitMetrics:
    """The counters a kit-built service exposes."""

    registry: CollectorRegistry = field(default_factory=CollectorRegistry)

    def __post_init__(self) -> None:
        self.requests = Counter(
            "participant_http_requests",
            "HTTP requests answered, by route template and status code.",
            ["method", "route", "status"],
            registry=self.registry,
        )
        self.latency = Histogram(
            "participant_http_request_seconds",
            "Time to answer an HTTP request.",
            ["method", "route"],
            registry=self.registry,
        )
        self.commands = Counter(
            "participant_commands",
            "Broker commands answered and acknowledged, by queue; redelivered: "
            "a command delivered again after a consumer or broker loss.",
            ["queue", "outcome"],
            registry=self.registry,
        )
        self.effects = Counter(
            "participant_effects",
            "Idempotent calls by endpoint, phase and outcome "
            "(applied, rejected, replayed, refused, nothing_to_undo, failed).",
            ["endpoint", "phase", "outcome"],
            registry=self.registry,
        )
        self.replays = Counter(
            "participant_idempotent_replays",
            "Repeated idempotency keys answered from the stored first answer.",
            ["endpoint"],
            registry=self.registry,
        )
        self.tombstone_refusals = Counter(
            "participant_tombstone_refusals",
            "Actions refused because their compensation had already arrived.",
            ["endpoint"],
            registry=self.registry,
        )
        self.version_conflicts = Counter(
            "participant_version_conflicts",
            "Optimistic updates that lost a race and were retried.",
            ["table"],
            registry=self.registry,
        )
        self.faults_fired = Counter(
            "participant_faults_fired",
            "In-service faults injected, by endpoint and mode.",
            ["endpoint", "mode"],
            registry=self.registry,
        )

        self.completions = Counter(
            "participant_callback_completions",
            "Completions sent to the orchestrator, by outcome (delivered, refused, "
            "retry_status, retry_network).",
            ["outcome"],
            registry=self.registry,
        )

    def conflict_counter(self, table: str) -> Callable[[], None]:
        """A no-argument callback counting version conflicts on ``table``."""
        return self.version_conflicts.labels(table=table).inc


class RequestMetricsMiddleware:
    """Counts and times every HTTP request by its route template (not its raw path)."""

    def __init__(self, app: ASGIApp, metrics: KitMetrics) -> None:
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = 500

        async def record_status(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, record_status)
        finally:
            # The template keeps label cardinality bounded (/orders/{order_id}, not every id).
            label = str(getattr(scope.get("route"), "path", "") or "unmatched")
            method = scope["method"]
            self.metrics.requests.labels(method, label, str(status)).inc()
            self.metrics.latency.labels(method, label).observe(time.perf_counter() - started)


def metrics_router(metrics: KitMetrics) -> APIRouter:
    """``GET /metrics`` in the Prometheus text format."""
    router = APIRouter()

    @router.get("/metrics", include_in_schema=False)
    async def serve_metrics(_request: Request) -> Response:
        return Response(generate_latest(metrics.registry), media_type=CONTENT_TYPE_LATEST)

    return router
