"""A bounded number of tasks in flight per provider account; the rest wait, in order.

A task takes one of its provider's slots from the moment its submission job is queued
until it leaves `submitted`/`processing` (finished, failed or cancelled). A new task waits
in the database (`pending`, not dispatched) and is dispatched, oldest first, when a slot is
free: at once when it is created, otherwise by the dispatch loop (every
`DISPATCH_INTERVAL_SECONDS`). Dispatching for one provider is serialised by a
transaction-scoped advisory lock, so replicas never hand out more slots than there are.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable

from imagetron_images.app.messages import enqueue_submission
from imagetron_images.app.ports import UnitOfWork
from imagetron_platform.clock import utcnow

log = logging.getLogger(__name__)


async def dispatch_waiting(uow: UnitOfWork, provider: str, max_in_flight: int) -> int:
    """In the open unit of work (the caller commits): queue the submission of as many of
    the provider's waiting tasks as it has free slots. Returns how many."""
    await uow.tasks.lock_provider(provider)
    free = max_in_flight - await uow.tasks.count_in_flight(provider)
    if free <= 0:
        return 0
    waiting = await uow.tasks.oldest_waiting(provider, free)
    now = utcnow()
    for task in waiting:
        task.dispatch(now)
        await uow.tasks.update(task)
        await enqueue_submission(uow, task)
    if waiting:
        log.info("dispatched %d waiting %s tasks", len(waiting), provider)
    return len(waiting)


async def dispatch_all(uow: UnitOfWork, providers: Iterable[str], max_in_flight: int) -> int:
    """Every provider, each in a transaction of its own."""
    dispatched = 0
    for provider in providers:
        async with uow:
            dispatched += await dispatch_waiting(uow, provider, max_in_flight)
            await uow.commit()
    return dispatched
