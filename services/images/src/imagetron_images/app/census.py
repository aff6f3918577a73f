"""How many tasks and images there are, by what an operator watches (the domain metrics)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from imagetron_contracts.models.images import TaskStatus
from imagetron_images.app.ports import UnitOfWork


@dataclass(frozen=True)
class Census:
    #: (provider, status) → tasks
    tasks: Mapping[tuple[str, TaskStatus], int]
    #: provider → tasks waiting for one of its slots (the dispatch queue)
    waiting: Mapping[str, int]
    #: "stored" | "failed" | "pending" → images
    images: Mapping[str, int]


async def take_census(uow: UnitOfWork) -> Census:
    async with uow:
        tasks, waiting = await uow.tasks.count_by_state()
        images = await uow.images.count_by_state()
    return Census(tasks=tasks, waiting=waiting, images=images)
