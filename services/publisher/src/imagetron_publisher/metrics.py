"""The publisher's domain metrics (the platform's registry): uploads, bytes, failures by
cause, and how long the oldest publication has waited in the upload queue."""

from __future__ import annotations

from prometheus_client import Counter, Gauge

from imagetron_platform.metrics import REGISTRY

UPLOADS = Counter(
    "imagetron_publisher_uploads_total",
    "Files delivered to an agency, by outcome (uploaded, or already there from an earlier try).",
    ["agency", "outcome"],
    registry=REGISTRY,
)
UPLOADED_BYTES = Counter(
    "imagetron_publisher_uploaded_bytes_total",
    "Bytes of files delivered to an agency.",
    ["agency"],
    registry=REGISTRY,
)
UPLOAD_FAILURES = Counter(
    "imagetron_publisher_upload_failures_total",
    "Upload attempts that failed, by cause (login, host_key, network, no_space, timeout, "
    "original, file_rule, account, storage); retried ones included.",
    ["agency", "cause"],
    registry=REGISTRY,
)
OLDEST_IN_DELIVERY = Gauge(
    "imagetron_publisher_oldest_in_delivery_seconds",
    "How long the oldest queued or uploading publication has waited (0 when none does).",
    registry=REGISTRY,
)
IN_DELIVERY = Gauge(
    "imagetron_publisher_in_delivery",
    "Publications queued or uploading.",
    registry=REGISTRY,
)
