"""Our entities as the contract's models: what the gateway, the events and the UI see."""

from __future__ import annotations

from collections.abc import Mapping

from imagetron_contracts.models import images as contract
from imagetron_images.app.ports import ImageProvider
from imagetron_images.domain import Capability, GenerationTask, Image


def capabilities(providers: Mapping[str, ImageProvider], name: str) -> frozenset[Capability]:
    """What the named provider can do; nothing when it is not configured (any more)."""
    provider = providers.get(name)
    return provider.capabilities if provider is not None else frozenset()


def task_view(
    task: GenerationTask, can: frozenset[Capability], queue_position: int | None = None
) -> contract.Task:
    """`can`: what the task's provider can do, which bounds the follow-ups it offers;
    `queue_position`: its place among the tasks waiting for a slot, when it waits."""
    return contract.Task(
        id=task.id,
        owner_id=task.owner_id,
        prompt_id=task.prompt_id,
        command=task.command,
        status=task.status,
        progress=task.progress,
        provider=task.provider,
        provider_task_id=task.provider_task_id,
        prompt_text=task.prompt_text,
        aspect_ratio=task.aspect_ratio,
        process_mode=task.process_mode,
        origin_task_id=task.origin_task_id,
        origin_index=task.origin_index,
        variation_strength=task.variation_strength,
        actions=task.actions(can),
        queue_position=queue_position,
        preview_url=task.preview_url,
        error=task.error,
        created_at=task.created_at,
        updated_at=task.updated_at,
        completed_at=task.completed_at,
    )


def image_view(image: Image) -> contract.Image:
    return contract.Image(
        id=image.id,
        owner_id=image.owner_id,
        task_id=image.task_id,
        prompt_id=image.prompt_id,
        kind=image.kind,
        index=image.index,
        is_persisted=image.is_persisted,
        content_type=image.content_type,
        bytes=image.size_bytes,
        width=image.width,
        height=image.height,
        sha256=image.sha256,
        error=image.error,
        attempts=image.attempts,
        created_at=image.created_at,
        persisted_at=image.persisted_at,
    )
