"""The PostgreSQL side: migrations match the tables, repositories page correctly even when
timestamps tie, and the unit of work commits all or nothing."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from uuid import UUID, uuid4

import pytest
from sqlalchemy import text
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncEngine

from imagetron_contracts.models.images import ImageKind, ProcessMode, TaskCommand, TaskStatus
from imagetron_images import migrations
from imagetron_images.adapters.tables import metadata
from imagetron_images.adapters.unit_of_work import ImagesUnitOfWork
from imagetron_images.app.ports import ImagePageKey
from imagetron_images.domain import GenerationTask, Image
from imagetron_images.migrations import SCHEMA, upgrade
from imagetron_platform.db import make_engine, make_session_factory
from imagetron_platform.pagination import PageKey
from imagetron_platform.testing import schema_differences

VERSIONS = Path(migrations.__file__).parent / "versions"

pytestmark = pytest.mark.integration

T = datetime(2026, 11, 24, 12, 0, tzinfo=UTC)
# No service serves it: these rows never wait for, or take, a real provider's slot.
PROVIDER = "persistence-test"


@pytest.fixture(scope="module")
async def engine(migrated: str) -> AsyncIterator[AsyncEngine]:
    engine = make_engine(migrated)
    yield engine
    await engine.dispose()


@pytest.fixture
def new_uow(engine: AsyncEngine) -> Any:
    factory = make_session_factory(engine)
    return lambda: ImagesUnitOfWork(factory)


def task(owner: UUID, *, at: datetime = T, prompt: UUID | None = None) -> GenerationTask:
    t, _ = GenerationTask.imagine(
        owner_id=owner, prompt_id=prompt or uuid4(), prompt_text="p", aspect_ratio="1:1",
        process_mode=ProcessMode.fast, provider=PROVIDER, now=at,
    )  # fmt: skip
    return t


def images_of(t: GenerationTask) -> list[Image]:
    return [
        Image(
            owner_id=t.owner_id,
            task_id=t.id,
            prompt_id=t.prompt_id,
            kind=ImageKind.grid if i == 0 else ImageKind.version,
            index=i,
            source_url=f"https://cdn.example/{t.id}/{i}.png",
            created_at=t.created_at,
            updated_at=t.created_at,
        )
        for i in range(5)
    ]


async def test_migrations_are_idempotent_and_match_the_tables(migrated: str, engine) -> None:
    await asyncio.to_thread(upgrade, migrated)  # a second replica starting: nothing to do

    async with engine.connect() as conn:
        assert await conn.run_sync(schema_differences, metadata, SCHEMA) == []
        version = await conn.scalar(text(f"SELECT version_num FROM {SCHEMA}.alembic_version"))
        # The newest revision in migrations/versions (files are named `NNNN_<what>.py`).
        assert version == max(p.name[:4] for p in VERSIONS.glob("[0-9]*.py"))


async def test_a_task_round_trips(new_uow) -> None:
    t = task(uuid4())
    t.provider_task_id, t.preview_url, t.progress = "goapi-1", "https://p", 30
    async with new_uow() as uow:
        await uow.tasks.add(t)
        await uow.commit()
    async with new_uow() as uow:
        loaded = await uow.tasks.get(t.owner_id, t.id)
    assert loaded is not None
    assert vars(loaded) == vars(t)


async def test_tasks_page_newest_first_even_when_timestamps_tie(new_uow) -> None:
    owner = uuid4()
    made = [task(owner, at=T) for _ in range(4)] + [task(owner, at=T.replace(hour=13))]
    async with new_uow() as uow:
        for t in made:
            await uow.tasks.add(t)
        await uow.commit()
    expected = sorted(made, key=lambda t: (t.created_at, t.id), reverse=True)

    seen: list[UUID] = []
    after = None
    async with new_uow() as uow:
        while page := await uow.tasks.list(
            owner, prompt_id=None, status=None, after=after, limit=2
        ):
            seen += [t.id for t in page]
            after = PageKey(created_at=page[-1].created_at, id=page[-1].id)
    assert seen == [t.id for t in expected]


async def test_task_filters(new_uow) -> None:
    owner, prompt = uuid4(), uuid4()
    a, b, other = task(owner, prompt=prompt), task(owner, prompt=prompt), task(owner)
    b.status = TaskStatus.failed
    async with new_uow() as uow:
        for t in (a, b, other):
            await uow.tasks.add(t)
        await uow.commit()
    async with new_uow() as uow:
        by_prompt = await uow.tasks.list(owner, prompt_id=prompt, status=None, after=None, limit=10)
        failed = await uow.tasks.list(
            owner, prompt_id=prompt, status=TaskStatus.failed, after=None, limit=10
        )
        foreign = await uow.tasks.get(uuid4(), a.id)
    assert {t.id for t in by_prompt} == {a.id, b.id}
    assert [t.id for t in failed] == [b.id]
    assert foreign is None


async def test_images_page_by_task_then_index(new_uow) -> None:
    owner = uuid4()
    tasks_ = [task(owner, at=T) for _ in range(2)] + [task(owner, at=T.replace(hour=14))]
    async with new_uow() as uow:
        for t in tasks_:
            await uow.tasks.add(t)
            await uow.images.add(images_of(t))
        await uow.commit()
    expected = [
        (t.id, i)
        for t in sorted(tasks_, key=lambda t: (t.created_at, t.id), reverse=True)
        for i in range(5)
    ]
    seen: list[tuple[UUID, int]] = []
    after = None
    async with new_uow() as uow:
        while page := await uow.images.list(
            owner, task_id=None, prompt_id=None, kind=None, after=after, limit=4
        ):
            seen += [(i.task_id, i.index) for i in page]
            last = page[-1]
            after = ImagePageKey(created_at=last.created_at, task_id=last.task_id, index=last.index)
        versions = await uow.images.list(
            owner, task_id=tasks_[0].id, prompt_id=None, kind=ImageKind.version, after=None, limit=9
        )
    assert seen == expected
    assert [i.index for i in versions] == [1, 2, 3, 4]


async def test_a_task_cannot_get_the_same_image_twice(new_uow) -> None:
    t = task(uuid4())
    async with new_uow() as uow:
        await uow.tasks.add(t)
        await uow.images.add(images_of(t))
        await uow.commit()

    async def add_again() -> None:
        async with new_uow() as uow:
            await uow.images.add(images_of(t))
            await uow.commit()

    with pytest.raises(IntegrityError, match="uq_images_task_id_kind_index"):
        await add_again()


async def test_without_commit_nothing_happened(new_uow) -> None:
    t = task(uuid4())
    async with new_uow() as uow:
        await uow.tasks.add(t)
        assert await uow.claim("images-test", f"m-{t.id}")
    async with new_uow() as uow:
        assert await uow.tasks.get(t.owner_id, t.id) is None
        assert await uow.claim("images-test", f"m-{t.id}"), "the claim was rolled back too"
        await uow.commit()
    async with new_uow() as uow:
        assert not await uow.claim("images-test", f"m-{t.id}")


async def test_callbacks_for_one_task_serialise_on_its_row(new_uow) -> None:
    t = task(uuid4())
    async with new_uow() as uow:
        await uow.tasks.add(t)
        await uow.commit()
    order: list[str] = []

    async def first() -> None:
        async with new_uow() as uow:
            await uow.tasks.get_for_update(t.id)
            order.append("first locked")
            await asyncio.sleep(0.3)
            order.append("first done")
            await uow.commit()

    async def second() -> None:
        await asyncio.sleep(0.05)
        async with new_uow() as uow:
            await uow.tasks.get_for_update(t.id)
            order.append("second locked")

    await asyncio.gather(first(), second())
    assert order == ["first locked", "first done", "second locked"]


async def test_replicas_claim_disjoint_batches_of_quiet_tasks(new_uow) -> None:
    """Long ago, so that no other test's task is quiet enough to be claimed here."""
    long_ago = datetime(2001, 1, 1, tzinfo=UTC)
    made = []
    async with new_uow() as uow:
        for n in range(6):
            t = task(uuid4(), at=long_ago)
            t.accept_submission(f"p-{t.id}", long_ago.replace(minute=n))
            await uow.tasks.add(t)
            made.append(t)
        await uow.commit()
    now = datetime(2001, 6, 2, tzinfo=UTC)

    async def claim(uow: Any, limit: int, learned: bool = True) -> Any:
        return await uow.tasks.claim_due_for_poll(
            now=now,
            quiet_for={(PROVIDER, TaskCommand.imagine): timedelta(days=1)} if learned else {},
            default_quiet_for=timedelta(days=1 if not learned else 365),
            lease=timedelta(minutes=2),
            limit=limit,
        )

    claimed: list[list[UUID]] = []
    started = asyncio.Event()

    async def replica(first: bool) -> None:
        async with new_uow() as uow:
            if not first:
                await started.wait()
            found = await claim(uow, limit=4)
            claimed.append([t.id for t in found])
            if first:
                started.set()
                await asyncio.sleep(0.3)  # hold the row locks while the other one claims
            await uow.commit()

    await asyncio.gather(replica(True), replica(False))
    first, second = claimed
    assert first == [t.id for t in made[:4]]  # oldest news first
    assert second == [t.id for t in made[4:]]  # locked rows skipped, not waited for
    async with new_uow() as uow:
        # Claimed means leased: not again until the lease is over.
        assert await claim(uow, limit=10) == []
        assert await claim(uow, limit=10, learned=False) == []
        for t in made:
            found = await uow.tasks.get_for_update(t.id)
            assert found is not None
            assert found.reconciled_at == now
            assert found.poll_after == now + timedelta(minutes=2)
            found.cancel(now)  # out of the way of the other modules' reconciliation
            await uow.tasks.update(found)
        await uow.commit()


async def test_dispatching_one_provider_is_serialised(new_uow) -> None:
    provider = f"dispatch-test-{uuid4().hex[:8]}"
    order: list[str] = []

    async def dispatcher(name: str, hold: float) -> None:
        async with new_uow() as uow:
            await uow.tasks.lock_provider(provider)
            order.append(f"{name} in")
            await asyncio.sleep(hold)
            order.append(f"{name} out")
            await uow.commit()

    async def second() -> None:
        await asyncio.sleep(0.05)
        await dispatcher("second", 0)

    await asyncio.gather(dispatcher("first", 0.3), second())
    assert order == ["first in", "first out", "second in", "second out"]
