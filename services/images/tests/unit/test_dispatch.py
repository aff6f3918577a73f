"""A bounded number of tasks in flight per provider: the rest wait in order, show their
place, and are dispatched as slots free up."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any
from uuid import UUID, uuid4

from imagetron_contracts.models.images import (
    ImagineCommand,
    ListTasksQuery,
    ProviderCallback,
    SubmitTaskJob,
    TaskCommand,
    TaskQuery,
    TaskStatus,
)
from imagetron_images.app import callbacks, tasks
from imagetron_images.app.dispatch import Slots, dispatch_all
from imagetron_images.domain import ProviderStatus, ProviderUpdate
from imagetron_platform.jobs import Delivery

SLOTS = Slots(per_provider=2)


async def imagine(world: Any, owner: UUID) -> Any:
    cmd = ImagineCommand(owner_id=owner, prompt_id=uuid4(), prompt_text="a red fox")
    return await tasks.imagine(
        cmd,
        world.uow,
        world.deps().providers,
        default_provider="goapi",
        slots=SLOTS,
        prompt_ledger=world.ledger,
    )


def submit_jobs(world: Any) -> list[str]:
    return [m.payload["task_id"] for m in world.uow.outbox if m.subject == "work.images.submit"]


async def get(world: Any, task: Any) -> Any:
    return await tasks.get_task(
        TaskQuery(owner_id=task.owner_id, task_id=task.id), world.uow, world.deps().providers
    )


async def finish(world: Any, task: Any) -> None:
    """Submit it and let the provider report it completed."""
    await tasks.submit_task(
        SubmitTaskJob(task_id=task.id, owner_id=task.owner_id),
        Delivery(f"submit-{task.id}"),
        world.uow,
        world.deps().providers,
    )
    provider_task_id = world.uow.task(task.id).provider_task_id
    update = ProviderUpdate(
        provider_task_id=provider_task_id, command=TaskCommand.imagine,
        status=ProviderStatus.completed, image_url="https://cdn.example/g.png",
    )  # fmt: skip
    callback = ProviderCallback(
        provider="goapi", task_id=task.id, received_at=datetime.now(UTC), body={"update": update}
    )
    await callbacks.apply_provider_callback(
        callback, Delivery(f"done-{task.id}"), world.uow, world.deps().providers
    )


async def test_tasks_beyond_the_bound_wait_and_show_their_place(world) -> None:
    owner = uuid4()
    made = [await imagine(world, owner) for _ in range(4)]
    assert [t.queue_position for t in made] == [None, None, 1, 2]
    assert submit_jobs(world) == [str(made[0].id), str(made[1].id)]
    assert all(t.status is TaskStatus.pending for t in made)
    # Waiting tasks are durable rows; reads show the same places.
    assert (await get(world, made[3])).queue_position == 2
    page = await tasks.list_tasks(ListTasksQuery(owner_id=owner), world.uow, world.deps().providers)
    assert [t.queue_position for t in page.items] == [2, 1, None, None]  # newest first


async def test_a_finished_task_frees_its_slot_for_the_oldest_waiting(world) -> None:
    owner = uuid4()
    made = [await imagine(world, owner) for _ in range(4)]
    await finish(world, made[0])
    assert world.uow.task(made[0].id).status is TaskStatus.completed
    assert await dispatch_all(world.uow, ["goapi"], SLOTS) == 1
    assert submit_jobs(world)[-1] == str(made[2].id)
    assert (await get(world, made[2])).queue_position is None
    assert (await get(world, made[3])).queue_position == 1
    assert await dispatch_all(world.uow, ["goapi"], SLOTS) == 0  # nothing free any more


async def test_a_cancelled_waiting_task_leaves_the_queue(world) -> None:
    owner = uuid4()
    made = [await imagine(world, owner) for _ in range(4)]
    await tasks.cancel_task(
        TaskQuery(owner_id=owner, task_id=made[2].id), world.uow, world.deps().providers
    )
    assert (await get(world, made[3])).queue_position == 1
    await finish(world, made[0])
    await dispatch_all(world.uow, ["goapi"], SLOTS)
    assert submit_jobs(world)[-1] == str(made[3].id)
    assert str(made[2].id) not in submit_jobs(world)


async def test_submitted_and_processing_tasks_hold_their_slots(world) -> None:
    owner = uuid4()
    first, second = await imagine(world, owner), await imagine(world, owner)
    await tasks.submit_task(
        SubmitTaskJob(task_id=first.id, owner_id=owner), Delivery("s1"), world.uow,
        world.deps().providers,
    )  # fmt: skip
    third = await imagine(world, owner)
    assert third.queue_position == 1
    assert await dispatch_all(world.uow, ["goapi"], SLOTS) == 0
    assert second.queue_position is None


async def test_another_owners_single_task_takes_the_next_free_slot(world) -> None:
    # One owner queues many; another's single task waits for one slot, not for the queue.
    busy, other = uuid4(), uuid4()
    many = [await imagine(world, busy) for _ in range(6)]
    assert [t.queue_position for t in many] == [None, None, 1, 2, 3, 4]
    single = await imagine(world, other)
    assert single.queue_position == 1
    assert [(await get(world, t)).queue_position for t in many[2:]] == [2, 3, 4, 5]

    await finish(world, many[0])
    assert await dispatch_all(world.uow, ["goapi"], SLOTS) == 1
    assert submit_jobs(world)[-1] == str(single.id)
    # Then the busy owner's queue goes on in its own order.
    assert [(await get(world, t)).queue_position for t in many[2:]] == [1, 2, 3, 4]


async def test_free_slots_go_round_the_waiting_owners(world) -> None:
    owners = [uuid4(), uuid4(), uuid4()]
    first = [await imagine(world, owners[0]) for _ in range(2)]  # both slots
    waiting = [await imagine(world, owner) for owner in owners for _ in range(2)]
    # Turns: owner 0 holds 2 slots, so its waiting tasks come after one of each other's.
    positions = {(await get(world, t)).id: (await get(world, t)).queue_position for t in waiting}
    expected = [waiting[2], waiting[4], waiting[3], waiting[5], waiting[0], waiting[1]]
    assert [positions[t.id] for t in expected] == [1, 2, 3, 4, 5, 6]

    await finish(world, first[0])
    assert await dispatch_all(world.uow, ["goapi"], SLOTS) == 1
    # The slot goes to an owner who had none (the older of the two), not to owner 0.
    names = {str(t.id): i for i, t in enumerate(waiting)}
    assert [names[j] for j in submit_jobs(world)[-1:]] == [2]
    # Every owner now has a turn: owner 2 holds nothing, the others one slot each.
    queue = sorted(waiting, key=lambda t: world.uow.task(t.id).created_at)
    positions = {t.id: (await get(world, t)).queue_position for t in queue if t != waiting[2]}
    assert [positions[waiting[i].id] for i in (4, 0, 3, 5, 1)] == [1, 2, 3, 4, 5]
