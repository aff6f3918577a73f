"""Every task ends: quiet tasks are asked about when they are overdue by expectation, lost
and late ones are given up (or sent again where the owner opted in), and what providers
answer goes through the same rules as callbacks."""

from __future__ import annotations

import asyncio
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
from imagetron_images.app.dispatch import Slots
from imagetron_images.app.ports import (
    ProviderRejected,
    ProviderTaskNotFound,
    ProviderUnavailable,
)
from imagetron_images.app.reconciliation import (
    Expectations,
    ReconcilePolicy,
    RoundReport,
    reconcile,
)
from imagetron_images.bootstrap import reconcile_policy
from imagetron_images.domain import Deadlines, GenerationTask, ProviderStatus, ProviderUpdate
from imagetron_images.settings import ImagesSettings
from imagetron_platform.jobs import Delivery

GRID = "https://cdn.example/grid.png"
SPLITS = tuple(f"https://cdn.example/{i}.png" for i in range(1, 5))
FLOOR = timedelta(seconds=30)
POLL_TIMEOUT = timedelta(seconds=30)
POLICY = ReconcilePolicy(
    poll_timeout=POLL_TIMEOUT, floor=FLOOR, retry_first=timedelta(seconds=15), batch_size=10
)
DEADLINE = timedelta(minutes=30)
SLOTS = Slots(per_provider=100, deadlines=Deadlines(DEADLINE))


async def submitted(world: Any, *, quiet_for: timedelta = FLOOR * 2, **imagine: Any) -> Any:
    """A submitted task whose last news is `quiet_for` old."""
    cmd = ImagineCommand(owner_id=uuid4(), prompt_id=uuid4(), prompt_text="a red fox", **imagine)
    created = await tasks.imagine(
        cmd,
        world.uow,
        world.deps().providers,
        default_provider="goapi",
        slots=SLOTS,
        prompt_ledger=world.ledger,
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


async def run(world: Any, policy: ReconcilePolicy = POLICY, **learned: Any) -> RoundReport:
    return await reconcile(
        world.uow,
        world.deps().providers,
        expectations=Expectations(floor=policy.floor, **learned),
        policy=policy,
        slots=SLOTS,
    )


def event_types(world: Any) -> Counter[str]:
    return Counter(m.subject.rsplit(".", 2)[-2] + "." + m.subject.rsplit(".", 1)[-1]
                   for m in world.uow.outbox if m.subject.startswith("events."))  # fmt: skip


def past_deadline(world: Any, task: GenerationTask) -> None:
    """Time passes: the task got its slot longer ago than its deadline allows."""
    stored = world.uow.task(task.id)
    stored.dispatched_at = datetime.now(UTC) - DEADLINE - timedelta(seconds=1)
    stored.deadline_at = stored.dispatched_at + DEADLINE


def submit_jobs(world: Any, task: GenerationTask) -> int:
    return sum(
        m.subject == "work.images.submit" and m.payload["task_id"] == str(task.id)
        for m in world.uow.outbox
    )


async def test_a_quiet_task_that_completed_at_the_provider_completes_here(world) -> None:
    task = await submitted(world)
    world.provider.tasks[task.provider_task_id] = report(
        task, ProviderStatus.completed, image_url=GRID, split_urls=SPLITS
    )
    assert await run(world) == RoundReport(polled=1, changed=1)
    done = world.uow.task(task.id)
    assert done.status is TaskStatus.completed
    assert done.reconciled_at is not None
    assert len(world.uow.images_of(task.id)) == 5
    assert [m.subject for m in world.uow.outbox].count("work.images.persist") == 5
    assert event_types(world)["task.completed"] == 1


async def test_a_failure_at_the_provider_fails_the_task_with_its_reason(world) -> None:
    task = await submitted(world)
    world.provider.tasks[task.provider_task_id] = report(
        task, ProviderStatus.failed, error="banned prompt"
    )
    await run(world)
    failed = world.uow.task(task.id)
    assert (failed.status, failed.error) == (TaskStatus.failed, "banned prompt")


async def test_a_task_with_recent_news_is_left_alone(world) -> None:
    await submitted(world, quiet_for=FLOOR / 2)
    assert await run(world) == RoundReport()
    assert world.provider.fetched == []


async def test_quiet_time_follows_how_long_the_command_usually_takes(world) -> None:
    # Imagines usually take five minutes at this provider: one quiet for two is not
    # overdue, one quiet for six is.
    usual = {("goapi", TaskCommand.imagine): timedelta(minutes=5)}
    early = await submitted(world, quiet_for=timedelta(minutes=2))
    late = await submitted(world, quiet_for=timedelta(minutes=6))
    for task in (early, late):
        world.provider.tasks[task.provider_task_id] = report(task, ProviderStatus.running)
    await run(world, learned=usual, refreshed_at=datetime.now(UTC))
    assert world.provider.fetched == [late.provider_task_id]


async def test_expectations_are_learned_from_recent_completions(world) -> None:
    now = datetime.now(UTC)
    for took in (60, 70, 80, 90, 300):
        task = await submitted(world)
        task.status, task.submitted_at = TaskStatus.completed, now - timedelta(seconds=took)
        task.completed_at = now
    expectations = Expectations(floor=FLOOR, quantile=0.5)
    await expectations.refresh(world.uow, now)
    assert expectations.thresholds() == {("goapi", TaskCommand.imagine): timedelta(seconds=80)}
    # Never below the floor, whatever was learned.
    expectations = Expectations(floor=timedelta(minutes=10), quantile=0.5)
    await expectations.refresh(world.uow, now)
    assert expectations.thresholds() == {("goapi", TaskCommand.imagine): timedelta(minutes=10)}


async def test_a_task_without_news_is_asked_again_after_growing_delays(world) -> None:
    task = await submitted(world)
    world.provider.tasks[task.provider_task_id] = report(task, ProviderStatus.queued)
    delays = []
    for _ in range(4):
        assert (await run(world)).polled == 1
        stored = world.uow.task(task.id)
        assert stored.poll_after is not None
        assert stored.reconciled_at is not None
        delays.append(round((stored.poll_after - stored.reconciled_at).total_seconds()))
        # Not asked again before its time...
        assert (await run(world)).polled == 0
        world.uow.task(task.id).poll_after = datetime.now(UTC)  # ...time passes
    assert delays == [15, 30, 60, 120]
    assert len(world.provider.fetched) == 4
    assert world.uow.task(task.id).status is TaskStatus.submitted


async def test_news_resets_the_delays(world) -> None:
    task = await submitted(world)
    world.provider.tasks[task.provider_task_id] = report(task, ProviderStatus.queued)
    await run(world)
    world.provider.tasks[task.provider_task_id] = report(task, ProviderStatus.running, progress=40)
    world.uow.task(task.id).poll_after = datetime.now(UTC)
    assert (await run(world)).changed == 1
    stored = world.uow.task(task.id)
    assert (stored.status, stored.polls, stored.poll_after) == (TaskStatus.processing, 0, None)


async def test_a_batch_is_bounded_and_oldest_first(world) -> None:
    made = [await submitted(world, quiet_for=FLOOR * (2 + n)) for n in range(3)]
    for task in made:
        world.provider.tasks[task.provider_task_id] = report(task, ProviderStatus.queued)
    await run(world, ReconcilePolicy(poll_timeout=POLL_TIMEOUT, floor=FLOOR, batch_size=2))
    assert world.provider.fetched == [made[2].provider_task_id, made[1].provider_task_id]


async def test_an_unreachable_provider_is_asked_again_later(world) -> None:
    task = await submitted(world)
    world.provider.tasks[task.provider_task_id] = ProviderUnavailable("down")
    other = await submitted(world)
    world.provider.tasks[other.provider_task_id] = ProviderRejected("bad request")
    assert (await run(world)).changed == 0
    for t in (task, other):
        stored = world.uow.task(t.id)
        assert (stored.status, stored.polls) == (TaskStatus.submitted, 1)


async def test_a_task_the_provider_no_longer_knows_fails_and_frees_its_slot(world) -> None:
    task = await submitted(world)
    world.provider.tasks[task.provider_task_id] = ProviderTaskNotFound("404: task not found")
    assert (await run(world)).changed == 1
    failed = world.uow.task(task.id)
    assert failed.status is TaskStatus.failed
    assert failed.error is not None
    assert "no longer knows this task" in failed.error
    assert not failed.takes_a_slot
    assert event_types(world)["task.failed"] == 1


async def test_a_lost_task_is_sent_again_where_its_owner_opted_in(world) -> None:
    task = await submitted(world, resubmit_if_lost=True)
    lost_id = task.provider_task_id
    world.provider.tasks[lost_id] = ProviderTaskNotFound("404")
    await run(world)
    again = world.uow.task(task.id)
    assert (again.status, again.resubmissions, again.provider_task_id) == (
        TaskStatus.pending, 1, None,
    )  # fmt: skip
    assert again.takes_a_slot  # it keeps its slot
    assert again.error is not None
    assert event_types(world)["task.resubmitted"] == 1
    assert submit_jobs(world, task) == 2

    # A late report about the lost submission is not taken for the new one.
    callback = ProviderCallback(
        provider="goapi", task_id=task.id, received_at=datetime.now(UTC),
        body={"update": report(task, ProviderStatus.completed, image_url=GRID)},
    )  # fmt: skip
    await callbacks.apply_provider_callback(
        callback, Delivery("late"), world.uow, world.deps().providers
    )
    assert world.uow.task(task.id).status is TaskStatus.pending
    assert world.uow.images_of(task.id) == []


async def test_resubmissions_are_bounded(world) -> None:
    task = await submitted(world, resubmit_if_lost=True)
    for attempt in range(3):
        stored = world.uow.task(task.id)
        world.provider.tasks[stored.provider_task_id] = ProviderTaskNotFound("404")
        await run(world)
        stored = world.uow.task(task.id)
        if attempt < 2:
            await tasks.submit_task(
                SubmitTaskJob(task_id=task.id, owner_id=task.owner_id),
                Delivery(f"again-{attempt}"),
                world.uow,
                world.deps().providers,
            )
            world.uow.task(task.id).updated_at -= FLOOR * 2
    failed = world.uow.task(task.id)
    assert (failed.status, failed.resubmissions) == (TaskStatus.failed, 2)
    assert failed.error is not None
    assert "sent 3 times" in failed.error


async def test_a_task_past_its_deadline_fails_and_is_stopped_at_the_provider(world) -> None:
    task = await submitted(world, quiet_for=timedelta(0))
    world.provider.tasks[task.provider_task_id] = report(task, ProviderStatus.running)
    past_deadline(world, task)
    assert (await run(world)).given_up == 1
    failed = world.uow.task(task.id)
    assert failed.status is TaskStatus.failed
    assert failed.error == (
        "Not finished within 30 min of getting a slot (the deadline of goapi imagine tasks)."
    )
    assert world.provider.cancelled == [task.provider_task_id]
    assert not failed.takes_a_slot


async def test_a_task_whose_submission_was_lost_ends_at_its_deadline(world) -> None:
    # Dispatched (it holds a slot), but its submission job never ran.
    cmd = ImagineCommand(owner_id=uuid4(), prompt_id=uuid4(), prompt_text="a red fox")
    created = await tasks.imagine(
        cmd,
        world.uow,
        world.deps().providers,
        default_provider="goapi",
        slots=SLOTS,
        prompt_ledger=world.ledger,
    )
    stuck = world.uow.task(created.id)
    assert stuck.takes_a_slot
    past_deadline(world, stuck)
    await run(world)
    assert world.uow.task(created.id).status is TaskStatus.failed
    assert world.provider.cancelled == []  # nothing to stop


async def test_a_task_that_finished_unnoticed_is_not_failed_at_its_deadline(world) -> None:
    # Its webhook was lost, and it is overdue before reconciliation asked: the last look
    # at the provider finds it completed.
    task = await submitted(world, quiet_for=timedelta(0))
    world.provider.tasks[task.provider_task_id] = report(
        task, ProviderStatus.completed, image_url=GRID, split_urls=SPLITS
    )
    past_deadline(world, task)
    assert (await run(world)).given_up == 0
    assert world.uow.task(task.id).status is TaskStatus.completed
    assert len(world.uow.images_of(task.id)) == 5
    assert world.provider.cancelled == []


async def test_a_task_past_its_deadline_is_sent_again_where_its_owner_opted_in(world) -> None:
    task = await submitted(world, quiet_for=timedelta(0), resubmit_if_lost=True)
    world.provider.tasks[task.provider_task_id] = ProviderUnavailable("down")
    past_deadline(world, task)
    await run(world)
    again = world.uow.task(task.id)
    assert (again.status, again.resubmissions) == (TaskStatus.pending, 1)
    assert again.deadline_at is not None
    assert again.deadline_at > datetime.now(UTC) + DEADLINE - timedelta(minutes=1)
    assert world.provider.cancelled == [task.provider_task_id]


async def test_a_callback_that_arrives_meanwhile_wins_and_nothing_is_applied_twice(
    world,
) -> None:
    task = await submitted(world)
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
    assert (await run(world)).changed == 0
    assert world.uow.task(task.id).status is TaskStatus.completed
    assert event_types(world)["task.completed"] == 1
    assert len(world.uow.images_of(task.id)) == 5


async def test_a_replica_that_dies_after_claiming_leaves_its_tasks_after_one_poll(
    world,
) -> None:
    # Killed while it asked the provider: the others may claim the task from `poll_after`
    # on, once that poll would have timed out, not minutes later.
    policy = reconcile_policy(ImagesSettings(goapi_timeout_seconds=12))
    task = await submitted(world)
    asking = asyncio.Event()

    async def fetch_and_die(provider_task_id: str) -> ProviderUpdate:
        asking.set()
        await asyncio.Future()  # the replica is killed meanwhile
        raise AssertionError("unreachable")

    world.provider.fetch = fetch_and_die
    replica = asyncio.create_task(run(world, policy))
    await asyncio.wait_for(asking.wait(), 5)
    replica.cancel()
    await asyncio.gather(replica, return_exceptions=True)
    claimed = world.uow.task(task.id)
    assert claimed.reconciled_at is not None
    assert claimed.poll_after is not None
    left_for = claimed.poll_after - claimed.reconciled_at
    assert timedelta(seconds=12) < left_for <= timedelta(seconds=20)


async def test_a_replica_never_polls_a_task_another_replica_is_polling(world) -> None:
    # Replica A claims two tasks; its poll of the first takes so long that its claim on the
    # second runs out, and replica B claims the second and asks about it. A must leave it.
    first = await submitted(world, quiet_for=FLOOR * 3)
    second = await submitted(world, quiet_for=FLOOR * 2)
    for t in (first, second):
        world.provider.tasks[t.provider_task_id] = report(t, ProviderStatus.queued)
    fetch = world.provider.fetch
    asking: Counter[str] = Counter()
    overlaps: list[str] = []
    b_asks, b_may_finish = asyncio.Event(), asyncio.Event()
    replica_b: list[asyncio.Task[RoundReport]] = []

    async def slow_fetch(provider_task_id: str) -> ProviderUpdate:
        asking[provider_task_id] += 1
        if asking[provider_task_id] > 1:
            overlaps.append(provider_task_id)
        try:
            if provider_task_id == first.provider_task_id:
                # Time passes: A's claim on the second task runs out; B's round begins.
                world.uow.task(second.id).poll_after = datetime.now(UTC)
                replica_b.append(asyncio.create_task(run_b()))
                await asyncio.wait_for(b_asks.wait(), 5)
            elif not b_asks.is_set():
                b_asks.set()
                await asyncio.wait_for(b_may_finish.wait(), 5)
            return await fetch(provider_task_id)
        finally:
            asking[provider_task_id] -= 1

    async def run_b() -> RoundReport:
        return await reconcile(
            type(world.uow)(world.uow.database),
            world.deps().providers,
            expectations=Expectations(floor=POLICY.floor),
            policy=POLICY,
            slots=SLOTS,
        )

    world.provider.fetch = slow_fetch
    a = await run(world)
    b_may_finish.set()
    b = await replica_b[0]
    assert overlaps == []
    assert world.provider.fetched == [first.provider_task_id, second.provider_task_id]
    assert (a.polled, b.polled) == (2, 1)  # claimed by both, asked about by one


async def test_a_provider_that_does_not_answer_is_given_up_on_and_asked_again_later(
    world,
) -> None:
    task = await submitted(world)

    async def no_answer(provider_task_id: str) -> ProviderUpdate:
        await asyncio.Future()
        raise AssertionError("unreachable")

    world.provider.fetch = no_answer
    policy = ReconcilePolicy(poll_timeout=timedelta(seconds=0.05), floor=FLOOR)
    assert await asyncio.wait_for(run(world, policy), 5) == RoundReport(polled=1)
    stored = world.uow.task(task.id)
    assert (stored.status, stored.polls) == (TaskStatus.submitted, 1)
