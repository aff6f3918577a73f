"""Prometheus metrics: one registry per process, HTTP RED metrics and platform counters."""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable

from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_LATEST
from starlette.requests import Request
from starlette.responses import Response

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
INBOX_DUPLICATES = Counter(
    "imagetron_inbox_duplicates_total",
    "Messages a consumer had already applied and skipped.",
    ["service", "consumer"],
    registry=REGISTRY,
)


def render() -> Response:
    return Response(generate_latest(REGISTRY), media_type=CONTENT_TYPE_LATEST)


def http_metrics_middleware(
    service: str,
) -> Callable[[Request, Callable[[Request], Awaitable[Response]]], Awaitable[Response]]:
    """Label by route template (`/api/v1/tasks/{task_id}`), not raw path: bounded cardinality."""

    async def middleware(
        request: Request, call_next: Callable[[Request], Awaitable[Response]]
    ) -> Response:
        start = time.perf_counter()
        status = 500
        try:
            response = await call_next(request)
            status = response.status_code
            return response
        finally:
            # The router records the matched route in the scope on its way in.
            route = getattr(request.scope.get("route"), "path", "unmatched")
            elapsed = time.perf_counter() - start
            HTTP_REQUESTS.labels(service, request.method, route, str(status)).inc()
            HTTP_LATENCY.labels(service, request.method, route).observe(elapsed)
            if route not in _QUIET_ROUTES:
                log.info("%s %s → %s in %.1f ms", request.method, route, status, elapsed * 1000)

    return middleware
