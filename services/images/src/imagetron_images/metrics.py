"""The images service's domain metrics, from a census of the database every
`census_interval_seconds`: every replica reports the same numbers, so dashboards take
`max`, not `sum`, across instances."""

from __future__ import annotations

from prometheus_client import Gauge

from imagetron_contracts.models.images import TaskStatus
from imagetron_images.app.census import Census
from imagetron_platform.metrics import REGISTRY

TASKS = Gauge(
    "imagetron_tasks",
    "Generation tasks by provider and state.",
    ["provider", "state"],
    registry=REGISTRY,
)
WAITING = Gauge(
    "imagetron_tasks_waiting",
    "Tasks waiting for one of their provider's slots (the dispatch queue).",
    ["provider"],
    registry=REGISTRY,
)
IMAGES = Gauge(
    "imagetron_images",
    "Images by state: stored in object storage, failed (not stored, with an error), pending.",
    ["state"],
    registry=REGISTRY,
)
IMAGE_STATES = ("stored", "failed", "pending")


def record(census: Census, providers: list[str]) -> None:
    """Every configured provider and state gets a value (0 included), so a series does not
    vanish when its count drops to nothing."""
    for provider in sorted({*providers, *(p for p, _ in census.tasks), *census.waiting}):
        for status in TaskStatus:
            TASKS.labels(provider, status.value).set(census.tasks.get((provider, status), 0))
        WAITING.labels(provider).set(census.waiting.get(provider, 0))
    for image_state in IMAGE_STATES:
        IMAGES.labels(image_state).set(census.images.get(image_state, 0))
