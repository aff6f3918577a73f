"""Lost webhooks: ask the provider about tasks that have been quiet for too long.

Providers do not guarantee delivery of their callbacks (GoAPI says so; midjourney-proxy
never retries). A task submitted or processing with no news past a deadline is fetched
from its provider, and what comes back goes through exactly the rules a callback does, so
a late callback and a reconciliation can race without applying anything twice.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from datetime import timedelta
from uuid import UUID

from imagetron_images.app.callbacks import record_provider_update
from imagetron_images.app.ports import ImageProvider, PermanentError, TransientError, UnitOfWork
from imagetron_images.domain import Capability, ProviderUpdate
from imagetron_platform.clock import utcnow

log = logging.getLogger(__name__)


async def reconcile_quiet_tasks(
    uow: UnitOfWork,
    providers: Mapping[str, ImageProvider],
    *,
    quiet_for: timedelta,
    batch_size: int,
) -> int:
    """Reconcile one batch; returns how many tasks changed.

    The batch is claimed (marked reconciled) in a transaction of its own, so other replicas
    pass over it and no row lock is held while the provider answers; each task's update is
    then applied in its own transaction under the task's lock.
    """
    now = utcnow()
    async with uow:
        claimed = await uow.tasks.claim_awaiting_provider(
            quiet_since=now - quiet_for, now=now, limit=batch_size
        )
        await uow.commit()
    changed = 0
    for task in claimed:
        provider = providers.get(task.provider)
        if provider is None or task.provider_task_id is None:
            log.warning("task %s: provider %r is not configured", task.id, task.provider)
            continue
        try:
            update = await provider.fetch(task.provider_task_id)
        except (TransientError, PermanentError) as exc:
            # Tried again once the task has been quiet for another `quiet_for`.
            log.warning("task %s: could not fetch it from %s: %s", task.id, task.provider, exc)
            continue
        if await _apply(uow, task.id, update, provider.capabilities):
            changed += 1
    if claimed:
        log.info("reconciled %d quiet tasks, %d changed", len(claimed), changed)
    return changed


async def _apply(
    uow: UnitOfWork, task_id: UUID, update: ProviderUpdate, can: frozenset[Capability]
) -> bool:
    async with uow:
        task = await uow.tasks.get_for_update(task_id)
        if task is None:
            return False
        changes = await record_provider_update(uow, task, update, can)
        await uow.commit()
    return bool(changes)
