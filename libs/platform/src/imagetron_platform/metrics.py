"""Prometheus metrics: one registry per process, HTTP RED metrics and platform counters."""

from __future__ import annotations

import logging
import time

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_LATEST
from starlette.responses import Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

log = logging.getLogger("imagetron.http")
#: Probed every few seconds by orchestrators; not worth a log line each.
_QUIET_ROUTES = {"/livez", "/readyz", "/metrics"}

REGISTRY = CollectorRegistry(auto_describe=True)

HTTP_REQUESTS = Counter(
    "imagetron_http_requests_total",
    "HTTP requests by route template, method and status.",
    ["service", "method", "route", "status"],
    registry=REGISTRY,
)
HTTP_LATENCY = Histogram(
    "imagetron_http_request_duration_seconds",
    "HTTP request latency by route template.",
    ["service", "method", "route"],
    registry=REGISTRY,
)
OUTBOX_PUBLISHED = Counter(
    "imagetron_outbox_published_total",
    "Outbox messages published to JetStream.",
    ["service"],
    registry=REGISTRY,
)
OUTBOX_OLDEST_UNPUBLISHED = Gauge(
    "imagetron_outbox_oldest_unpublished_seconds",
    "Age of the oldest outbox row not yet published (0 when none is waiting).",
    ["service"],
    registry=REGISTRY,
)
INBOX_DUPLICATES = Counter(
    "imagetron_inbox_duplicates_total",
    "Messages a consumer had already applied and skipped.",
    ["service", "consumer"],
    registry=REGISTRY,
)


def render() -> Response:
    return Response(generate_latest(REGISTRY), media_type=CONTENT_TYPE_LATEST)


class HttpMetricsMiddleware:
    """RED metrics and one log line per request, labelled by route template
    (`/api/v1/tasks/{task_id}`), not raw path: bounded cardinality.

    Plain ASGI rather than `BaseHTTPMiddleware`, which would pass every chunk of a streamed
    response (SSE, image bytes) through an extra in-memory stream."""

    def __init__(self, app: ASGIApp, service: str) -> None:
        self.app = app
        self.service = service

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        start = time.perf_counter()
        status = 500

        async def send_with_status(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, send_with_status)
        finally:
            # The router records the matched route in the scope on its way in.
            route = getattr(scope.get("route"), "path", "unmatched")
            elapsed = time.perf_counter() - start
            method = scope["method"]
            HTTP_REQUESTS.labels(self.service, method, route, str(status)).inc()
            HTTP_LATENCY.labels(self.service, method, route).observe(elapsed)
            if route not in _QUIET_ROUTES:
                log.info("%s %s → %s in %.1f ms", method, route, status, elapsed * 1000)
