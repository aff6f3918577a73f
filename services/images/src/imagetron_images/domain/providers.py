"""What we say to an image provider and what it tells us back, in no provider's dialect."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from uuid import UUID

from imagetron_contracts.models.images import ProcessMode, TaskCommand, VariationStrength


class Capability(StrEnum):
    """What a provider can be asked to do; each adapter declares its own."""

    imagine = "imagine"
    reroll = "reroll"
    variation = "variation"
    upscale = "upscale"
    # Stop a task the provider has accepted but not started rendering.
    cancel = "cancel"
    # Not a command: `submit` returns only once the images exist (staged in our bucket),
    # and `fetch` of the task id it returns reports the completed task at once.
    synchronous = "synchronous"


def capability_of(command: TaskCommand) -> Capability:
    return Capability(command.value)


class ProviderStatus(StrEnum):
    """A provider task's state, whatever the provider calls it."""

    queued = "queued"
    running = "running"
    completed = "completed"
    failed = "failed"
    # Stopped at the provider (by us or by someone with access to the account).
    cancelled = "cancelled"


# A synchronous provider's results, staged in our own bucket until they are persisted:
# `staged://staging/{owner_id}/{task_id}/...` (an S3 key under the scheme).
STAGED_SCHEME = "staged://"


def staging_prefix(owner_id: UUID, task_id: UUID) -> str:
    """The S3 key prefix under which a task's staged results must lie."""
    return f"staging/{owner_id}/{task_id}/"


@dataclass(frozen=True, kw_only=True)
class ProviderRequest:
    """Everything a provider needs to start the work of one task."""

    task_id: UUID
    owner_id: UUID
    command: TaskCommand
    prompt_text: str
    aspect_ratio: str
    process_mode: ProcessMode
    # reroll/variation/upscale act on the provider's task behind our origin task.
    origin_provider_task_id: str | None = None
    origin_index: int | None = None
    variation_strength: VariationStrength | None = None


@dataclass(frozen=True, kw_only=True)
class ProviderUpdate:
    """A provider's report on one of its tasks (from a callback or from polling)."""

    provider_task_id: str
    command: TaskCommand
    status: ProviderStatus
    progress: int | None = None
    preview_url: str | None = None
    # The main image: the 2x2 grid, or the single image of an upscale.
    image_url: str | None = None
    # The grid's four splits, in order.
    split_urls: tuple[str, ...] = ()
    error: str | None = None
