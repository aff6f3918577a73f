from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

from imagetron_platform.metrics import REGISTRY

OPEN_CONNECTIONS = Gauge("imagetron_sse_connections", "Open SSE connections.", registry=REGISTRY)
REJECTED_CONNECTIONS = Counter(
    "imagetron_sse_rejected_total", "SSE connections refused at the cap.", registry=REGISTRY
)
EVENTS_DELIVERED = Counter(
    "imagetron_sse_events_delivered_total", "Events written to SSE clients.", registry=REGISTRY
)
REPLAYS = Counter(
    "imagetron_sse_replays_total",
    "Connections resumed with Last-Event-ID.",
    ["outcome"],
    registry=REGISTRY,
)
DELIVERY_LAG = Histogram(
    "imagetron_sse_delivery_lag_seconds",
    "From an event's occurred_at to its write to a client.",
    registry=REGISTRY,
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60),
)
