"""The gateway's own metrics (HTTP and messaging metrics are the platform's)."""

from __future__ import annotations

from prometheus_client import Counter, Gauge

from imagetron_platform.metrics import REGISTRY

EVENT_STREAMS = Gauge(
    "imagetron_gateway_event_streams",
    "Browser event streams this gateway passes on.",
    registry=REGISTRY,
)
EVENT_UPSTREAMS = Gauge(
    "imagetron_gateway_event_upstreams",
    "Streams from the notifier this gateway holds (each shared by the browser streams that "
    "want the same events).",
    registry=REGISTRY,
)
STREAMS_BEHIND = Counter(
    "imagetron_gateway_event_streams_behind_total",
    "Browser event streams ended for falling behind (their browsers resume by id).",
    registry=REGISTRY,
)
