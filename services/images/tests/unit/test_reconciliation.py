"""Reconciliation of quiet tasks with a fake provider: the same rules as callbacks."""

from __future__ import annotations

from collections import Counter
from datetime import UTC, datetime, timedelta
from typing import Any
from uuid import uuid4

from imagetron_contracts.models.images import (
    ImagineCommand,
    ProviderCallback,
    SubmitTaskJob,
    TaskCommand,
    TaskStatus,
)
from imagetron_images.app import callbacks, tasks
from imagetron_images.app.ports import ProviderRejected, ProviderUnavailable
from imagetron_images.app.reconciliation import reconcile_quiet_tasks
from imagetron_images.domain import GenerationTask, ProviderStatus, ProviderUpdate
from imagetron_platform.jobs import Delivery

GRID = "https://cdn.example/grid.png"
SPLITS = tuple(f"https://cdn.example/{i}.png" for i in range(1, 5))
QUIET = timedelta(minutes=10)

SLOTS = 100  # tasks in flight per provider: not the subject here


async def quiet_task(world: Any, *, quiet_for: timedelta = QUIET * 2) -> GenerationTask:
    """A submitted task whose last news is `quiet_for` old."""
    cmd = ImagineCommand(owner_id=uuid4(), prompt_id=uuid4(), prompt_text="a red fox")
    created = await tasks.imagine(
        cmd, world.uow, world.deps().providers, default_provider="goapi", max_in_flight=SLOTS
    )
    await tasks.submit_task(
        SubmitTaskJob(task_id=created.id, owner_id=created.owner_id),
        Delivery(f"submit-{created.id}"),
        world.uow,
        world.deps().providers,
    )
    task = world.uow.committed.tasks[created.id]
    task.updated_at = datetime.now(UTC) - quiet_for
    return task


def report(task: GenerationTask, status: ProviderStatus, **fields: Any) -> ProviderUpdate:
    assert task.provider_task_id is not None
    return ProviderUpdate(
        provider_task_id=task.provider_task_id, command=TaskCommand.imagine, status=status,
        **fields,
    )  # fmt: skip


async def reconcile(world: Any, batch_size: int = 10) -> int:
    return await reconcile_quiet_tasks(
        world.uow, world.deps().providers, quiet_for=QUIET, batch_size=batch_size
    )


def event_types(world: Any) -> Counter[str]:
    return Counter(m.subject.rsplit(".", 2)[-2] + "." + m.subject.rsplit(".", 1)[-1]
                   for m in world.uow.outbox if m.subject.startswith("events."))  # fmt: skip


async def test_a_quiet_task_that_completed_at_the_provider_completes_here(world) -> None:
    task = await quiet_task(world)
    assert task.provider_task_id is not None
    world.provider.tasks[task.provider_task_id] = report(
        task, ProviderStatus.completed, image_url=GRID, split_urls=SPLITS
    )
    assert await reconcile(world) == 1
    done = world.uow.task(task.id)
    assert done.status is TaskStatus.completed
    assert done.reconciled_at is not None
    assert len(world.uow.images_of(task.id)) == 5
    assert [m.subject for m in world.uow.outbox].count("work.images.persist") == 5
    assert event_types(world)["task.completed"] == 1


async def test_a_failure_at_the_provider_fails_the_task_with_its_reason(world) -> None:
    task = await quiet_task(world)
    assert task.provider_task_id is not None
    world.provider.tasks[task.provider_task_id] = report(
        task, ProviderStatus.failed, error="banned prompt"
    )
    await reconcile(world)
    failed = world.uow.task(task.id)
    assert (failed.status, failed.error) == (TaskStatus.failed, "banned prompt")


async def test_a_task_with_recent_news_is_left_alone(world) -> None:
    await quiet_task(world, quiet_for=QUIET / 2)
    assert await reconcile(world) == 0
    assert world.provider.fetched == []


async def test_a_task_is_asked_about_once_per_quiet_period(world) -> None:
    task = await quiet_task(world)
    assert task.provider_task_id is not None
    world.provider.tasks[task.provider_task_id] = report(task, ProviderStatus.queued)
    assert await reconcile(world) == 0
    assert await reconcile(world) == 0
    assert world.provider.fetched == [task.provider_task_id]
    assert world.uow.task(task.id).status is TaskStatus.submitted


async def test_a_batch_is_bounded_and_oldest_first(world) -> None:
    made = [await quiet_task(world, quiet_for=QUIET * (2 + n)) for n in range(3)]
    for task in made:
        assert task.provider_task_id is not None
        world.provider.tasks[task.provider_task_id] = report(task, ProviderStatus.queued)
    await reconcile(world, batch_size=2)
    assert world.provider.fetched == [made[2].provider_task_id, made[1].provider_task_id]


async def test_an_unreachable_provider_is_asked_again_later(world) -> None:
    task = await quiet_task(world)
    assert task.provider_task_id is not None
    world.provider.tasks[task.provider_task_id] = ProviderUnavailable("down")
    other = await quiet_task(world)
    assert other.provider_task_id is not None
    world.provider.tasks[other.provider_task_id] = ProviderRejected("unknown task")
    assert await reconcile(world) == 0
    assert world.uow.task(task.id).status is TaskStatus.submitted
    assert world.uow.task(other.id).status is TaskStatus.submitted


async def test_a_callback_that_arrives_meanwhile_wins_and_nothing_is_applied_twice(
    world,
) -> None:
    task = await quiet_task(world)
    assert task.provider_task_id is not None
    completed = report(task, ProviderStatus.completed, image_url=GRID, split_urls=SPLITS)
    fetch = world.provider.fetch

    async def fetch_while_the_callback_lands(provider_task_id: str) -> ProviderUpdate:
        # No transaction is open while the provider answers: the callback gets in first.
        callback = ProviderCallback(
            provider="goapi", task_id=task.id, received_at=datetime.now(UTC),
            body={"update": completed},
        )  # fmt: skip
        await callbacks.apply_provider_callback(
            callback, Delivery("callback"), world.uow, world.deps().providers
        )
        return await fetch(provider_task_id)

    world.provider.tasks[task.provider_task_id] = completed
    world.provider.fetch = fetch_while_the_callback_lands
    assert await reconcile(world) == 0
    assert world.uow.task(task.id).status is TaskStatus.completed
    assert event_types(world)["task.completed"] == 1
    assert len(world.uow.images_of(task.id)) == 5
