"""A bounded number of tasks in flight per provider account, shared fairly between owners.

A task takes one of its provider's slots from the moment its submission job is queued
until it leaves `pending`/`submitted`/`processing` (finished, failed, cancelled, or given up
at its deadline). The count is never kept: it is read from the tasks' states each time, so
it cannot drift. A new task waits in the database (`pending`, not dispatched) and is
dispatched when a slot is free: at once when it is created, otherwise by the dispatch loop
(every `DISPATCH_INTERVAL_SECONDS`).

Fair share: the next free slot goes to the owner with the fewest tasks in flight, that
owner's oldest waiting task first (ties: the older task). So one owner who queues forty
tasks fills the free slots only while nobody else waits; another owner's single task takes
the next slot that frees up. A waiting task's turn is `(its owner's tasks in flight) +
(its owner's waiting tasks older than it)`, and tasks go in turn order (then age), which is
also how `queue_position` counts. Dispatching for one provider is serialised by a
transaction-scoped advisory lock, so replicas never hand out more slots than there are.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import timedelta

from imagetron_images.app.messages import enqueue_submission
from imagetron_images.app.ports import UnitOfWork
from imagetron_images.domain import Deadlines
from imagetron_platform.clock import utcnow

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Slots:
    """How many tasks each provider account may have in flight, and how long each may hold
    its slot before it is given up."""

    per_provider: int = 10
    deadlines: Deadlines = field(default_factory=lambda: Deadlines(timedelta(hours=1)))


async def dispatch_waiting(uow: UnitOfWork, provider: str, slots: Slots) -> int:
    """In the open unit of work (the caller commits): queue the submission of as many of
    the provider's waiting tasks as it has free slots, in fair-share order. Returns how
    many."""
    await uow.tasks.lock_provider(provider)
    free = slots.per_provider - await uow.tasks.count_in_flight(provider)
    if free <= 0:
        return 0
    waiting = await uow.tasks.next_waiting(provider, free)
    now = utcnow()
    for task in waiting:
        task.dispatch(now, slots.deadlines.of(task.provider, task.command))
        await uow.tasks.update(task)
        await enqueue_submission(uow, task)
    if waiting:
        log.info("dispatched %d waiting %s tasks", len(waiting), provider)
    return len(waiting)


async def dispatch_all(uow: UnitOfWork, providers: Iterable[str], slots: Slots) -> int:
    """Every provider, each in a transaction of its own."""
    dispatched = 0
    for provider in providers:
        async with uow:
            dispatched += await dispatch_waiting(uow, provider, slots)
            await uow.commit()
    return dispatched
