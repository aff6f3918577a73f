"""Provider callbacks: verified by the gateway, applied here to their task."""

from __future__ import annotations

import logging
from collections.abc import Mapping

from imagetron_contracts.models.images import ProviderCallback
from imagetron_images.app.messages import emit_task_change, enqueue_persistence
from imagetron_images.app.ports import ImageProvider, MalformedProviderMessage, UnitOfWork
from imagetron_images.domain import (
    Capability,
    GenerationTask,
    ProviderUpdate,
    TaskChange,
    TaskCompleted,
    apply_provider_update,
)
from imagetron_platform.clock import utcnow
from imagetron_platform.jobs import Delivery

log = logging.getLogger(__name__)


def callback_consumer(provider: str) -> str:
    """The durable consumer (and inbox) name for `webhooks.<provider>`."""
    return f"images-webhooks-{provider}"


async def apply_provider_callback(
    callback: ProviderCallback,
    delivery: Delivery,
    uow: UnitOfWork,
    providers: Mapping[str, ImageProvider],
) -> None:
    """Apply one callback in one transaction: the task's transition, its new images, the
    events and one persistence job per image. Whatever does not apply is logged and
    acknowledged: a callback that cannot be applied now never will be."""
    provider = providers.get(callback.provider)
    if provider is None:
        log.warning("callback from unconfigured provider %r dropped", callback.provider)
        return
    try:
        update = provider.parse_callback(callback.body)
    except MalformedProviderMessage as exc:
        log.warning(
            "malformed %s callback for task %s dropped: %s",
            callback.provider,
            callback.task_id,
            exc,
        )
        return

    async with uow:
        if not await uow.claim(callback_consumer(callback.provider), delivery.message_id):
            log.info("callback %s was applied before", delivery.message_id)
            return
        task = await uow.tasks.get_for_update(callback.task_id)
        if task is None or task.provider != callback.provider:
            log.warning(
                "%s callback for unknown task %s ignored", callback.provider, callback.task_id
            )
        else:
            await record_provider_update(uow, task, update, provider.capabilities)
        await uow.commit()


async def record_provider_update(
    uow: UnitOfWork, task: GenerationTask, update: ProviderUpdate, can: frozenset[Capability]
) -> tuple[TaskChange, ...]:
    """Apply a provider's report (a callback or what reconciliation fetched) to a task the
    open unit of work has locked: the transition, its events, the new images and one
    persistence job each. The caller commits."""
    changes = apply_provider_update(task, update, utcnow())
    if changes:
        await uow.tasks.update(task)
    for change in changes:
        await emit_task_change(uow, change, can)
        if isinstance(change, TaskCompleted):
            await uow.images.add(change.images)
            for image in change.images:
                await enqueue_persistence(uow, image)
    return changes
