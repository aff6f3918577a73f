"""The in-memory repositories of the unit tests (`tests/fakes.py`) and the SQL ones answer
the same questions the same way: each test runs against both, so a fake cannot drift from
what PostgreSQL does (fair-share queue positions, slots, claims for reconciliation, overdue
tasks, learned durations, listing order and pages)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime, timedelta
from typing import Any
from uuid import UUID, uuid4

import pytest
from sqlalchemy import text

from imagetron_contracts.models.images import ImageKind, ProcessMode, TaskCommand, TaskStatus
from imagetron_images.adapters.unit_of_work import ImagesUnitOfWork
from imagetron_images.app.census import take_census
from imagetron_images.app.ports import ImagePageKey, UnitOfWork
from imagetron_images.domain import GenerationTask, Image
from imagetron_images.metrics import record
from imagetron_images.migrations import upgrade
from imagetron_platform.db import make_engine, make_session_factory
from imagetron_platform.metrics import REGISTRY
from imagetron_platform.pagination import PageKey
from imagetron_platform.testing import InMemoryDatabase

from .fakes import FakeUnitOfWork, Tables

pytestmark = pytest.mark.integration

T0 = datetime(2001, 1, 1, tzinfo=UTC)


@pytest.fixture(params=["fake", "sql"])
async def new_uow(request: pytest.FixtureRequest) -> AsyncIterator[Callable[[], UnitOfWork]]:
    if request.param == "fake":
        uow = FakeUnitOfWork(InMemoryDatabase(Tables()))
        yield lambda: uow
        return
    database_url = request.getfixturevalue("postgres_dsn")
    await asyncio.to_thread(upgrade, database_url)
    engine = make_engine(database_url)
    async with engine.begin() as conn:
        # Claims for reconciliation look at every task: start from none.
        await conn.execute(text("TRUNCATE images.images, images.tasks"))
    factory = make_session_factory(engine)
    try:
        yield lambda: ImagesUnitOfWork(factory)
    finally:
        await engine.dispose()


def task(
    provider: str = "goapi",
    *,
    at: datetime = T0,
    owner: UUID | None = None,
    prompt: UUID | None = None,
    status: TaskStatus = TaskStatus.pending,
    dispatched: bool = False,
    updated: datetime | None = None,
    reconciled: datetime | None = None,
    poll_after: datetime | None = None,
) -> GenerationTask:
    t, _ = GenerationTask.imagine(
        owner_id=owner or uuid4(), prompt_id=prompt or uuid4(), prompt_text="p",
        aspect_ratio="1:1", process_mode=ProcessMode.fast, provider=provider, now=at,
    )  # fmt: skip
    t.status = status
    t.dispatched_at = at if dispatched or status is not TaskStatus.pending else None
    t.updated_at = updated or at
    t.reconciled_at = reconciled
    t.poll_after = poll_after
    return t


async def store(new_uow: Callable[[], UnitOfWork], *tasks: GenerationTask) -> None:
    async with new_uow() as uow:
        for t in tasks:
            await uow.tasks.add(t)
        await uow.commit()


async def test_queue_positions_count_the_waiting_tasks_ahead_of_the_same_provider(new_uow):
    first, second, third = (task(at=T0 + timedelta(seconds=n)) for n in range(3))
    # Same time as `second`: the id breaks the tie.
    twin = task(at=second.created_at)
    others = [
        task("replicate", at=T0),
        task(at=T0, dispatched=True),
        task(at=T0, status=TaskStatus.submitted),
    ]
    await store(new_uow, third, first, twin, second, *others)
    async with new_uow() as uow:
        positions = {t.id: await uow.tasks.queue_position(t) for t in (first, second, twin, third)}
        other_provider = await uow.tasks.queue_position(others[0])
    ordered = sorted([second, twin], key=lambda t: t.id)
    assert positions[first.id] == 1
    assert (positions[ordered[0].id], positions[ordered[1].id]) == (2, 3)
    assert positions[third.id] == 4
    assert other_provider == 1


async def test_slots_are_taken_by_dispatched_submitted_and_processing_tasks(new_uow):
    taking = [
        task(dispatched=True),
        task(status=TaskStatus.submitted),
        task(status=TaskStatus.processing),
    ]
    free = [
        task(),  # waiting
        task(status=TaskStatus.completed),
        task(status=TaskStatus.failed),
        task(status=TaskStatus.cancelled),
        task("replicate", status=TaskStatus.submitted),
    ]
    await store(new_uow, *taking, *free)
    async with new_uow() as uow:
        assert await uow.tasks.count_in_flight("goapi") == 3
        assert await uow.tasks.count_in_flight("replicate") == 1
        assert await uow.tasks.count_in_flight("nobody") == 0


async def test_the_oldest_waiting_tasks_of_a_provider_come_first(new_uow):
    waiting = [task(at=T0 + timedelta(minutes=n)) for n in range(4)]
    await store(new_uow, *reversed(waiting), task(dispatched=True, at=T0 - timedelta(days=1)))
    await store(new_uow, task("replicate", at=T0 - timedelta(days=2)))
    async with new_uow() as uow:
        picked = await uow.tasks.next_waiting("goapi", 3)
    assert [t.id for t in picked] == [t.id for t in waiting[:3]]


async def test_waiting_tasks_take_turns_between_owners(new_uow):
    busy, other, idle = uuid4(), uuid4(), uuid4()
    # `busy` holds two slots, `other` one, `idle` none.
    holding = [task(owner=busy, dispatched=True), task(owner=busy, status=TaskStatus.processing)]
    holding.append(task(owner=other, status=TaskStatus.submitted))
    queued = [
        task(owner=busy, at=T0),  # turn 2
        task(owner=busy, at=T0 + timedelta(minutes=1)),  # turn 3
        task(owner=other, at=T0 + timedelta(minutes=2)),  # turn 1
        task(owner=idle, at=T0 + timedelta(minutes=3)),  # turn 0
        task(owner=idle, at=T0 + timedelta(minutes=4)),  # turn 1
    ]
    await store(new_uow, *holding, *queued)
    expected = [queued[3], queued[2], queued[4], queued[0], queued[1]]
    async with new_uow() as uow:
        picked = await uow.tasks.next_waiting("goapi", 10)
        positions = [await uow.tasks.queue_position(t) for t in expected]
    assert [t.id for t in picked] == [t.id for t in expected]
    assert positions == [1, 2, 3, 4, 5]


async def test_quiet_tasks_are_claimed_when_due_oldest_news_first_and_leased(new_uow):
    now = T0 + timedelta(hours=2)
    usual = {("goapi", TaskCommand.imagine): timedelta(minutes=30)}
    due = [
        # quiet for longer than imagines usually take
        task(status=TaskStatus.processing, updated=now - timedelta(minutes=40)),
        # another provider: the default quiet time applies
        task("replicate", status=TaskStatus.submitted, updated=now - timedelta(minutes=70)),
        # asked before without news; its next poll is due
        task(status=TaskStatus.submitted, updated=T0, poll_after=now - timedelta(seconds=1)),
    ]
    not_due = [
        task(status=TaskStatus.submitted, updated=now - timedelta(minutes=20)),
        task("replicate", status=TaskStatus.submitted, updated=now - timedelta(minutes=50)),
        task(status=TaskStatus.submitted, updated=T0, poll_after=now + timedelta(seconds=1)),
        task(status=TaskStatus.pending, updated=T0),
        task(status=TaskStatus.completed, updated=T0),
    ]
    await store(new_uow, *due, *not_due)

    async def claim(limit: int) -> Any:
        async with new_uow() as uow:
            found = await uow.tasks.claim_due_for_poll(
                now=now, quiet_for=usual, default_quiet_for=timedelta(hours=1),
                lease=timedelta(minutes=2), limit=limit,
            )  # fmt: skip
            await uow.commit()
        return found

    first, rest, again = await claim(2), await claim(10), await claim(10)
    async with new_uow() as uow:
        reloaded = await uow.tasks.get(due[0].owner_id, due[0].id)
    assert [t.id for t in first] == [due[2].id, due[1].id]
    assert [t.id for t in rest] == [due[0].id]
    assert again == []  # leased
    assert reloaded is not None
    assert (reloaded.reconciled_at, reloaded.poll_after) == (now, now + timedelta(minutes=2))


async def test_a_claim_is_renewed_only_while_it_is_the_last_one(new_uow):
    now = T0 + timedelta(hours=2)
    lease = timedelta(seconds=35)
    quiet = task(status=TaskStatus.submitted, updated=T0)
    finished = task(status=TaskStatus.completed, updated=T0, reconciled=now)
    await store(new_uow, quiet, finished)

    async def claim(at: datetime) -> list[UUID]:
        async with new_uow() as uow:
            found = await uow.tasks.claim_due_for_poll(
                now=at, quiet_for={}, default_quiet_for=timedelta(hours=1), lease=lease,
                limit=10,
            )  # fmt: skip
            await uow.commit()
        return [t.id for t in found]

    async def renew(task_id: UUID, claimed_at: datetime, until: datetime) -> bool:
        async with new_uow() as uow:
            renewed = await uow.tasks.renew_poll_claim(task_id, claimed_at=claimed_at, until=until)
            await uow.commit()
        return renewed

    async def poll_after() -> datetime | None:
        async with new_uow() as uow:
            reloaded = await uow.tasks.get(quiet.owner_id, quiet.id)
        assert reloaded is not None
        return reloaded.poll_after

    assert await claim(now) == [quiet.id]
    assert await renew(quiet.id, now, now + timedelta(seconds=50))
    assert await poll_after() == now + timedelta(seconds=50)
    # Its claim ran out: another replica claimed it, and the first cannot renew any more.
    later = now + timedelta(seconds=60)
    assert await claim(later) == [quiet.id]
    assert not await renew(quiet.id, now, later + timedelta(minutes=5))
    assert await poll_after() == later + lease
    assert await renew(quiet.id, later, later + timedelta(seconds=40))
    assert not await renew(finished.id, now, later)


async def test_overdue_tasks_are_found_soonest_deadline_first(new_uow):
    made = []
    for n in range(4):
        t = task(
            at=T0, dispatched=True, status=TaskStatus.submitted if n % 2 else TaskStatus.pending
        )
        t.deadline_at = T0 + timedelta(minutes=10 * (n + 1))
        made.append(t)
    waiting = task(at=T0)
    waiting.deadline_at = T0  # not holding a slot: no deadline applies
    finished = task(at=T0, status=TaskStatus.completed)
    finished.deadline_at = T0
    await store(new_uow, *reversed(made), waiting, finished)
    async with new_uow() as uow:
        overdue = await uow.tasks.lock_overdue(T0 + timedelta(minutes=25), 10)
    assert [t.id for t in overdue] == [made[0].id, made[1].id]


async def test_typical_durations_per_provider_and_command(new_uow):
    done = []
    for minutes in (1, 2, 3, 4):
        t = task(at=T0, status=TaskStatus.completed)
        t.submitted_at, t.completed_at = T0, T0 + timedelta(minutes=minutes)
        done.append(t)
    too_few = [task("replicate", at=T0, status=TaskStatus.completed) for _ in range(2)]
    for t in too_few:
        t.submitted_at, t.completed_at = T0, T0 + timedelta(minutes=9)
    old = task(at=T0, status=TaskStatus.completed)
    old.submitted_at, old.completed_at = T0 - timedelta(days=3), T0 - timedelta(days=2)
    await store(new_uow, *done, *too_few, old)
    async with new_uow() as uow:
        durations = await uow.tasks.typical_durations(T0, 0.5)
    assert durations == {("goapi", TaskCommand.imagine): timedelta(minutes=2.5)}


async def test_tasks_list_newest_first_filtered_and_in_pages(new_uow):
    owner, prompt = uuid4(), uuid4()
    mine = [
        task(owner=owner, prompt=prompt if n % 2 else None, at=T0 + timedelta(minutes=n // 2))
        for n in range(7)
    ]
    mine[3].status = TaskStatus.completed
    await store(new_uow, *mine, task(at=T0 + timedelta(days=1)))
    expected = sorted(mine, key=lambda t: (t.created_at, t.id), reverse=True)

    async def pages(**where: Any) -> list[UUID]:
        seen, after = [], None
        async with new_uow() as uow:
            while True:
                page = await uow.tasks.list(owner, after=after, limit=2, **where)
                seen += [t.id for t in page]
                if len(page) < 2:
                    return seen
                after = PageKey(page[-1].created_at, page[-1].id)

    assert await pages(prompt_id=None, status=None) == [t.id for t in expected]
    assert await pages(prompt_id=prompt, status=None) == [
        t.id for t in expected if t.prompt_id == prompt
    ]
    assert await pages(prompt_id=None, status=TaskStatus.completed) == [mine[3].id]


def image(t: GenerationTask, index: int, *, persisted: bool = False) -> Image:
    kind = ImageKind.grid if index == 0 else ImageKind.version
    return Image(
        owner_id=t.owner_id, task_id=t.id, prompt_id=t.prompt_id, kind=kind, index=index,
        source_url=f"https://cdn.example/{t.id}/{index}.png", created_at=t.created_at,
        updated_at=t.created_at, is_persisted=persisted,
    )  # fmt: skip


async def test_images_list_newest_task_first_then_by_index_in_pages(new_uow):
    owner = uuid4()
    same_time = [task(owner=owner, at=T0) for _ in range(2)]
    later = task(owner=owner, at=T0 + timedelta(minutes=1))
    await store(new_uow, *same_time, later)
    shots = [image(t, i, persisted=i % 2 == 1) for t in (*same_time, later) for i in range(3)]
    async with new_uow() as uow:
        await uow.images.add(list(reversed(shots)))
        await uow.commit()
    order = sorted(shots, key=lambda i: (-i.created_at.timestamp(), -i.task_id.int, i.index))

    async def pages(**where: Any) -> list[UUID]:
        seen: list[UUID] = []
        after = None
        filters = {"task_id": None, "prompt_id": None, "kind": None, **where}
        async with new_uow() as uow:
            while True:
                page = await uow.images.list(owner, after=after, limit=4, **filters)
                seen += [i.id for i in page]
                if len(page) < 4:
                    return seen
                last = page[-1]
                after = ImagePageKey(last.created_at, last.task_id, last.index)

    assert await pages() == [i.id for i in order]
    assert await pages(kind=ImageKind.grid) == [i.id for i in order if i.index == 0]
    assert await pages(is_persisted=True) == [i.id for i in order if i.is_persisted]
    assert await pages(task_id=later.id) == [i.id for i in order if i.task_id == later.id]


async def test_the_census_counts_tasks_by_provider_and_state_and_images_by_state(new_uow):
    grid = task(status=TaskStatus.completed)
    tasks = [task(), task(), task(dispatched=True), task("replicate", status=TaskStatus.failed)]
    await store(new_uow, grid, *tasks)
    shots = [image(grid, i, persisted=i < 3) for i in range(5)]
    shots[3].error = "the download was refused"
    async with new_uow() as uow:
        await uow.images.add(shots)
        await uow.commit()
    census = await take_census(new_uow())
    assert census.tasks == {
        ("goapi", TaskStatus.pending): 3,
        ("goapi", TaskStatus.completed): 1,
        ("replicate", TaskStatus.failed): 1,
    }
    assert census.waiting == {"goapi": 2}
    assert census.images == {"stored": 3, "failed": 1, "pending": 1}

    record(census, ["goapi", "openai"])
    assert sample("imagetron_tasks", provider="goapi", state="pending") == 3
    assert sample("imagetron_tasks", provider="openai", state="completed") == 0
    assert sample("imagetron_tasks_waiting", provider="goapi") == 2
    assert sample("imagetron_images", state="failed") == 1


def sample(name: str, **labels: str) -> float | None:
    return REGISTRY.get_sample_value(name, labels)


async def test_a_task_whose_id_is_taken_is_not_added(new_uow) -> None:
    """The same request sent again names the same task (`task_id_for`): the second add
    says so and changes nothing."""
    first = task(prompt=uuid4())
    async with new_uow() as uow:
        assert await uow.tasks.add(first)
        await uow.commit()
    again = task(owner=first.owner_id, prompt=uuid4())
    again.id = first.id
    async with new_uow() as uow:
        assert not await uow.tasks.add(again)
        await uow.commit()
    async with new_uow() as uow:
        stored = await uow.tasks.get(first.owner_id, first.id)
    assert stored is not None
    assert stored.prompt_id == first.prompt_id
