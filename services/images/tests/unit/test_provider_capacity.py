"""A provider at capacity (429, queue full) delays a submission; it never fails the task."""

from __future__ import annotations

from typing import Any
from uuid import uuid4

import pytest

from imagetron_contracts.models.images import ImagineCommand, SubmitTaskJob, TaskQuery, TaskStatus
from imagetron_images.app import tasks
from imagetron_images.app.dispatch import Slots
from imagetron_images.app.ports import ProviderBusy
from imagetron_platform.jobs import Delivery, RetryLater

LAST = 10

SLOTS = Slots(per_provider=100)  # tasks in flight per provider: not the subject here


async def pending_task(world: Any) -> Any:
    cmd = ImagineCommand(owner_id=uuid4(), prompt_id=uuid4(), prompt_text="a red fox")
    return await tasks.imagine(
        cmd,
        world.uow,
        world.deps().providers,
        default_provider="goapi",
        slots=SLOTS,
        prompt_ledger=world.ledger,
    )


async def submit(world: Any, task: Any, msg: str, attempt: int) -> None:
    await tasks.submit_task(
        SubmitTaskJob(task_id=task.id, owner_id=task.owner_id),
        Delivery(msg, attempt=attempt, max_attempts=LAST),
        world.uow,
        world.deps().providers,
    )


def submit_jobs(world: Any) -> list[Any]:
    return [m for m in world.uow.outbox if m.subject == "work.images.submit"]


async def test_busy_before_the_last_delivery_is_retried_later(world) -> None:
    task = await pending_task(world)
    world.provider.answers = [ProviderBusy("GoAPI is at capacity (429)")]
    with pytest.raises(RetryLater):
        await submit(world, task, "job-1", attempt=1)
    assert world.uow.task(task.id).status is TaskStatus.pending


async def test_busy_on_the_last_delivery_queues_the_task_again_instead_of_failing(world) -> None:
    task = await pending_task(world)
    world.provider.answers = [ProviderBusy("queue full")]
    await submit(world, task, "job-1", attempt=LAST)
    assert world.uow.task(task.id).status is TaskStatus.pending
    jobs = submit_jobs(world)
    assert len(jobs) == 2  # the one from imagine, and a fresh one
    assert jobs[-1].payload["task_id"] == str(task.id)
    assert not [m for m in world.uow.outbox if m.subject.endswith("task.failed")]

    # The fresh job (a new message id, so a new series of attempts) gets it through.
    await submit(world, task, str(jobs[-1].message_id), attempt=1)
    assert world.uow.task(task.id).status is TaskStatus.submitted


async def test_a_task_cancelled_while_waiting_is_not_queued_again(world) -> None:
    task = await pending_task(world)
    world.provider.answers = [ProviderBusy("queue full")]

    async def busy_and_cancelled(request: Any) -> str:
        await tasks.cancel_task(
            TaskQuery(owner_id=task.owner_id, task_id=task.id), world.uow, world.deps().providers
        )
        raise ProviderBusy("queue full")

    world.provider.submit = busy_and_cancelled
    await submit(world, task, "job-1", attempt=LAST)
    assert world.uow.task(task.id).status is TaskStatus.cancelled
    assert len(submit_jobs(world)) == 1
