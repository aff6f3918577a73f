"""The in-memory repositories of the unit tests (`tests/fakes.py`) and the SQL ones answer
the same questions the same way: each test runs against both, so a fake cannot drift from
what PostgreSQL does (queue positions, slots, claims for reconciliation, listing order and
pages)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime, timedelta
from typing import Any
from uuid import UUID, uuid4

import pytest
from sqlalchemy import text

from imagetron_contracts.models.images import ImageKind, ProcessMode, TaskStatus
from imagetron_images.adapters.unit_of_work import ImagesUnitOfWork
from imagetron_images.app.census import take_census
from imagetron_images.app.ports import ImagePageKey, UnitOfWork
from imagetron_images.domain import GenerationTask, Image
from imagetron_images.metrics import record
from imagetron_images.migrations import upgrade
from imagetron_platform.db import make_engine, make_session_factory
from imagetron_platform.metrics import REGISTRY
from imagetron_platform.pagination import PageKey

from .fakes import FakeUnitOfWork

pytestmark = pytest.mark.integration

T0 = datetime(2001, 1, 1, tzinfo=UTC)


@pytest.fixture(params=["fake", "sql"])
async def new_uow(request: pytest.FixtureRequest) -> AsyncIterator[Callable[[], UnitOfWork]]:
    if request.param == "fake":
        uow = FakeUnitOfWork()
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
) -> GenerationTask:
    t, _ = GenerationTask.imagine(
        owner_id=owner or uuid4(), prompt_id=prompt or uuid4(), prompt_text="p",
        aspect_ratio="1:1", process_mode=ProcessMode.fast, provider=provider, now=at,
    )  # fmt: skip
    t.status = status
    t.dispatched_at = at if dispatched or status is not TaskStatus.pending else None
    t.updated_at = updated or at
    t.reconciled_at = reconciled
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
        picked = await uow.tasks.oldest_waiting("goapi", 3)
    assert [t.id for t in picked] == [t.id for t in waiting[:3]]


async def test_quiet_tasks_are_claimed_once_oldest_news_first_and_marked(new_uow):
    quiet_since = T0 + timedelta(hours=1)
    quiet = [
        task(status=TaskStatus.processing, updated=T0 + timedelta(minutes=20)),
        task(status=TaskStatus.submitted, updated=T0 + timedelta(minutes=10)),
        task(status=TaskStatus.submitted, updated=T0, reconciled=T0 + timedelta(minutes=30)),
    ]
    not_quiet = [
        task(status=TaskStatus.submitted, updated=quiet_since + timedelta(minutes=1)),
        task(status=TaskStatus.submitted, updated=T0, reconciled=quiet_since),
        task(status=TaskStatus.pending, updated=T0),
        task(status=TaskStatus.completed, updated=T0),
    ]
    await store(new_uow, *quiet, *not_quiet)
    now = T0 + timedelta(hours=2)
    async with new_uow() as uow:
        first = await uow.tasks.claim_awaiting_provider(quiet_since=quiet_since, now=now, limit=2)
        await uow.commit()
    async with new_uow() as uow:
        rest = await uow.tasks.claim_awaiting_provider(quiet_since=quiet_since, now=now, limit=10)
        await uow.commit()
    async with new_uow() as uow:
        again = await uow.tasks.claim_awaiting_provider(quiet_since=quiet_since, now=now, limit=10)
        reloaded = await uow.tasks.get(quiet[0].owner_id, quiet[0].id)
    assert [t.id for t in first] == [quiet[2].id, quiet[1].id]
    assert [t.id for t in rest] == [quiet[0].id]
    assert again == []
    assert reloaded is not None
    assert reloaded.reconciled_at == now
    assert all(t.reconciled_at == now for t in (*first, *rest))


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
