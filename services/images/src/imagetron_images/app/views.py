"""Our entities as the contract's models: what the gateway, the events and the UI see."""

from __future__ import annotations

from collections.abc import Mapping

from imagetron_contracts.models import images as contract
from imagetron_images.app.ports import ImageProvider
from imagetron_images.domain import Capability, GenerationTask, Image
from imagetron_platform.views import view


def capabilities(providers: Mapping[str, ImageProvider], name: str) -> frozenset[Capability]:
    """What the named provider can do; nothing when it is not configured (any more)."""
    provider = providers.get(name)
    return provider.capabilities if provider is not None else frozenset()


def task_view(
    task: GenerationTask, can: frozenset[Capability], queue_position: int | None = None
) -> contract.Task:
    """`can`: what the task's provider can do, which bounds the follow-ups it offers;
    `queue_position`: its place among the tasks waiting for a slot, when it waits."""
    return view(
        contract.Task,
        task,
        actions=task.actions(can),
        queue_position=queue_position,
        deadline_at=task.deadline_at if task.takes_a_slot else None,
    )


def image_view(image: Image) -> contract.Image:
    return view(contract.Image, image, bytes=image.size_bytes)
