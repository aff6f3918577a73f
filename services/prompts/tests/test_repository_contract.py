"""The in-memory repositories of the unit tests (`tests/fakes.py`) and the SQL ones answer
listings the same way: each test runs against both, so a fake cannot drift from what
PostgreSQL does (filters, order, pages after a cursor, owners kept apart)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any
from uuid import UUID, uuid4

import pytest

from imagetron_contracts.models.prompts import PromptStatus
from imagetron_platform.db import make_engine, make_session_factory
from imagetron_platform.pagination import PageKey
from imagetron_prompts.adapters.unit_of_work import PromptsUnitOfWork
from imagetron_prompts.app.ports import LlmCall, LlmOutcome, LlmPurpose, PromptFilter, UnitOfWork
from imagetron_prompts.domain.chat import Chat
from imagetron_prompts.domain.prompt import Prompt
from imagetron_prompts.domain.usage import TokenUsage
from imagetron_prompts.migrations import upgrade

from .fakes import FakeUnitOfWork, InMemoryStore

pytestmark = pytest.mark.integration

T0 = datetime(2026, 3, 1, tzinfo=UTC)


@pytest.fixture(params=["fake", "sql"])
async def new_uow(request: pytest.FixtureRequest) -> AsyncIterator[Callable[[], UnitOfWork]]:
    if request.param == "fake":
        store = InMemoryStore()
        yield lambda: FakeUnitOfWork(store)
        return
    database_url = request.getfixturevalue("postgres_dsn")
    await asyncio.to_thread(upgrade, database_url)
    engine = make_engine(database_url)
    factory = make_session_factory(engine)
    try:
        yield lambda: PromptsUnitOfWork(factory)
    finally:
        await engine.dispose()


async def pages(
    new_uow: Callable[[], UnitOfWork], owner: UUID, size: int, **where: Any
) -> list[UUID]:
    seen: list[UUID] = []
    after = None
    async with new_uow() as uow:
        while True:
            page = await uow.prompts.list_page(
                owner, limit=size, after=after, where=PromptFilter(**where) if where else None
            )
            seen += [p.id for p in page]
            if len(page) < size:
                return seen
            after = PageKey(page[-1].created_at, page[-1].id)


async def test_prompts_list_newest_first_in_pages_filtered_and_per_owner(new_uow):
    owner, stranger = uuid4(), uuid4()
    chat = Chat.start(owner_id=owner, brief="autumn still lifes", now=T0)
    texts = ["A PEAR on linen", "two apples", "pear and fig", "a jug", "plums", "Pearl"]
    prompts = []
    for n, text in enumerate(texts):
        # Pairs share a creation time: the id orders them.
        prompt = Prompt.create(
            owner_id=owner, text=text, title="Still life with pear" if n == 3 else None,
            now=T0 + timedelta(minutes=n // 2), chat_id=chat.id if n % 2 else None,
        )  # fmt: skip
        prompts.append(prompt)
    prompts[4].change_status(PromptStatus.approved, T0 + timedelta(hours=1))
    async with new_uow() as uow:
        await uow.chats.add(chat)
        for prompt in prompts:
            await uow.prompts.add(prompt)
        await uow.prompts.add(Prompt.create(owner_id=stranger, text="pear", title=None, now=T0))
        await uow.commit()
    newest_first = sorted(prompts, key=lambda p: (p.created_at, p.id), reverse=True)

    assert await pages(new_uow, owner, 2) == [p.id for p in newest_first]
    assert await pages(new_uow, owner, 4, chat_id=chat.id) == [
        p.id for p in newest_first if p.chat_id == chat.id
    ]
    assert await pages(new_uow, owner, 2, status=PromptStatus.approved) == [prompts[4].id]
    # Case-insensitive, in the text or the title.
    assert await pages(new_uow, owner, 2, text="pear") == [
        p.id for p in newest_first if p in (prompts[0], prompts[2], prompts[3], prompts[5])
    ]
    assert await pages(new_uow, owner, 2, text="pear", chat_id=chat.id) == [
        p.id for p in newest_first if p in (prompts[3], prompts[5])
    ]
    assert await pages(new_uow, uuid4(), 2) == []


async def test_chats_list_newest_first_in_pages_without_their_messages(new_uow):
    owner = uuid4()
    chats = [
        Chat.start(owner_id=owner, brief=f"brief {n}", now=T0 + timedelta(minutes=n // 2))
        for n in range(5)
    ]
    async with new_uow() as uow:
        for chat in chats:
            await uow.chats.add(chat)
        await uow.chats.add(Chat.start(owner_id=uuid4(), brief="someone else's", now=T0))
        await uow.commit()
    seen: list[UUID] = []
    after = None
    async with new_uow() as uow:
        while True:
            page = await uow.chats.list_page(owner, limit=2, after=after)
            assert all(chat.messages == [] for chat in page)
            seen += [c.id for c in page]
            if len(page) < 2:
                break
            after = PageKey(page[-1].created_at, page[-1].id)
    assert seen == [c.id for c in sorted(chats, key=lambda c: (c.created_at, c.id), reverse=True)]


async def test_a_prompt_whose_id_is_taken_is_not_added(new_uow):
    """The same request sent again names the same prompt (`app/requested.py`): the second
    add says so and changes nothing."""
    first = Prompt.create(owner_id=uuid4(), text="a pear", title=None, now=T0)
    again = Prompt.create(owner_id=first.owner_id, text="a fig", title=None, now=T0)
    again.id = first.id
    for prompt, added in ((first, True), (again, False)):
        async with new_uow() as uow:
            assert await uow.prompts.add(prompt) is added
            await uow.commit()
    async with new_uow() as uow:
        stored = await uow.prompts.get(first.owner_id, first.id)
    assert stored is not None
    assert stored.text == "a pear"


async def test_a_deleted_prompt_is_remembered_for_its_owner_until_forgotten(new_uow):
    owner = uuid4()
    prompt = Prompt.create(owner_id=owner, text="a pear", title=None, now=T0)
    async with new_uow() as uow:
        await uow.prompts.add(prompt)
        await uow.commit()
    async with new_uow() as uow:
        assert not await uow.prompts.was_deleted(owner, prompt.id)
        found = await uow.prompts.get(owner, prompt.id, for_update=True)
        assert found is not None
        found.delete(T0 + timedelta(hours=1))
        await uow.prompts.delete(found)
        await uow.commit()
    async with new_uow() as uow:
        assert await uow.prompts.get(owner, prompt.id) is None
        assert await uow.prompts.was_deleted(owner, prompt.id)
        assert not await uow.prompts.was_deleted(uuid4(), prompt.id)  # only to its owner
        assert await uow.prompts.forget_deleted(T0 + timedelta(hours=1), 1000) == 0
        assert await uow.prompts.forget_deleted(T0 + timedelta(hours=2), 1000) >= 1
        await uow.commit()
    async with new_uow() as uow:
        assert not await uow.prompts.was_deleted(owner, prompt.id)


async def test_a_ledger_entry_is_recorded_once_and_read_by_its_owner(new_uow):
    """A language-model call's entry under an id its request names says the request was
    done: a second entry with that id is not added, and only its owner reads it."""
    owner = uuid4()
    usage = TokenUsage(model="m", prompt_tokens=30, completion_tokens=9, attempts=2)
    first = LlmCall(
        id=uuid4(), owner_id=owner, purpose=LlmPurpose.CHAT_START, outcome=LlmOutcome.OK,
        usage=usage, created_at=T0, chat_id=uuid4(),
    )  # fmt: skip
    again = replace(first, usage=replace(usage, prompt_tokens=1), created_at=T0 + timedelta(1))
    for call, added in ((first, True), (again, False)):
        async with new_uow() as uow:
            assert await uow.llm_calls.add(call) is added
            await uow.commit()
    async with new_uow() as uow:
        assert await uow.llm_calls.get(owner, first.id) == first
        assert await uow.llm_calls.get(uuid4(), first.id) is None
        assert await uow.llm_calls.get(owner, uuid4()) is None
