"""`rpc.prompts.*` through the platform's RpcClient, as the gateway calls them."""

from __future__ import annotations

import asyncio
import uuid

import pytest
from pydantic import BaseModel

from imagetron_contracts.models.prompts import (
    CreatePromptCommand,
    GenerationReservation,
    GenerationState,
    ListPromptsQuery,
    Prompt,
    PromptPage,
    PromptQuery,
    PromptStatus,
)
from imagetron_contracts.streams import (
    RPC_PROMPTS_CREATE,
    RPC_PROMPTS_DELETE,
    RPC_PROMPTS_GENERATION_RELEASE,
    RPC_PROMPTS_GENERATION_RESERVE,
    RPC_PROMPTS_GET,
    RPC_PROMPTS_LIST,
    RPC_PROMPTS_PREPARE_GENERATION,
)
from imagetron_platform.clock import utcnow
from imagetron_platform.errors import Conflict, Gone, InvalidRequest, NotFound
from imagetron_prompts.adapters.unit_of_work import PromptsUnitOfWork
from imagetron_prompts.domain.prompt import TaskPhase

pytestmark = pytest.mark.integration


async def create(rpc, owner_id, text="a lighthouse at dusk", title=None) -> Prompt:
    command = CreatePromptCommand(owner_id=owner_id, text=text, title=title)
    return await rpc.call(RPC_PROMPTS_CREATE, command, Prompt)


async def test_create_then_get(rpc):
    owner = uuid.uuid4()
    created = await create(rpc, owner, " a lighthouse at dusk ", title="Dusk")
    assert (created.owner_id, created.text, created.title) == (
        owner,
        "a lighthouse at dusk",
        "Dusk",
    )
    assert created.status is PromptStatus.new
    assert created.generation_state is GenerationState.idle
    got = await rpc.call(RPC_PROMPTS_GET, PromptQuery(owner_id=owner, prompt_id=created.id), Prompt)
    assert got == created


async def test_create_emits_prompt_created_through_the_outbox(rpc, tap):
    owner = uuid.uuid4()
    events = await tap(f"events.prompts.{owner}.>")
    created = await create(rpc, owner)
    [message] = await events.wait_for(1)
    assert message.subject == f"events.prompts.{owner}.prompt.created"
    assert message.body["type"] == "prompt.created"
    assert message.msg_id == message.body["id"]
    assert message.body["prompt"] == created.model_dump(mode="json")


async def test_a_create_sent_again_after_its_prompt_was_deleted_is_410(rpc):
    owner, request_id = uuid.uuid4(), uuid.uuid4().hex
    command = CreatePromptCommand(owner_id=owner, text="a pear", request_id=request_id)
    created = await rpc.call(RPC_PROMPTS_CREATE, command, Prompt)
    assert await rpc.call(RPC_PROMPTS_CREATE, command, Prompt) == created  # sent again
    await rpc.call(RPC_PROMPTS_DELETE, PromptQuery(owner_id=owner, prompt_id=created.id), Prompt)
    with pytest.raises(Gone) as gone:
        await rpc.call(RPC_PROMPTS_CREATE, command, Prompt)
    assert gone.value.status == 410
    with pytest.raises(NotFound):  # not created again
        await rpc.call(RPC_PROMPTS_GET, PromptQuery(owner_id=owner, prompt_id=created.id), Prompt)


async def test_a_create_sent_again_while_its_prompt_is_deleted_is_410(rpc, session_factory):
    """The delete holds the prompt's row when the late create arrives: the create's insert
    waits for it, and finds the id remembered once the delete commits."""
    owner, request_id = uuid.uuid4(), uuid.uuid4().hex
    command = CreatePromptCommand(owner_id=owner, text="a pear", request_id=request_id)
    created = await rpc.call(RPC_PROMPTS_CREATE, command, Prompt)
    async with PromptsUnitOfWork(session_factory) as uow:
        prompt = await uow.prompts.get(owner, created.id, for_update=True)
        assert prompt is not None
        prompt.delete(utcnow())
        await uow.prompts.delete(prompt)
        late = asyncio.create_task(rpc.call(RPC_PROMPTS_CREATE, command, Prompt))
        await asyncio.sleep(0.5)
        assert not late.done()  # waiting for the delete's row
        await uow.commit()
    with pytest.raises(Gone):
        await late


async def test_invalid_text_is_422(rpc):
    with pytest.raises(InvalidRequest) as caught:
        await create(rpc, uuid.uuid4(), "   ")
    assert caught.value.errors is not None


async def test_malformed_request_is_422_not_a_timeout(rpc):
    class NoOwner(BaseModel):
        text: str

    with pytest.raises(InvalidRequest):
        await rpc.call(RPC_PROMPTS_CREATE, NoOwner(text="x"), Prompt)


async def test_list_pages_newest_first_and_only_the_owners(rpc):
    owner, other = uuid.uuid4(), uuid.uuid4()
    mine = [await create(rpc, owner, f"prompt {i}") for i in range(5)]
    await create(rpc, other, "not yours")
    seen, cursor = [], None
    while True:
        page = await rpc.call(
            RPC_PROMPTS_LIST, ListPromptsQuery(owner_id=owner, limit=2, cursor=cursor), PromptPage
        )
        seen += [p.id for p in page.items]
        cursor = page.next_cursor
        if cursor is None:
            break
    assert seen == [p.id for p in reversed(mine)]


async def test_list_with_a_bad_cursor_is_422(rpc):
    with pytest.raises(InvalidRequest):
        await rpc.call(
            RPC_PROMPTS_LIST, ListPromptsQuery(owner_id=uuid.uuid4(), cursor="nope"), PromptPage
        )


@pytest.mark.parametrize("subject", [RPC_PROMPTS_GET, RPC_PROMPTS_PREPARE_GENERATION])
async def test_another_owners_prompt_is_404(rpc, subject):
    created = await create(rpc, uuid.uuid4())
    with pytest.raises(NotFound):
        await rpc.call(subject, PromptQuery(owner_id=uuid.uuid4(), prompt_id=created.id), Prompt)


async def test_unknown_prompt_is_404(rpc):
    with pytest.raises(NotFound):
        await rpc.call(
            RPC_PROMPTS_PREPARE_GENERATION,
            PromptQuery(owner_id=uuid.uuid4(), prompt_id=uuid.uuid4()),
            Prompt,
        )


async def test_prepare_generation_returns_the_prompt_and_409_once_archived(rpc, session_factory):
    owner = uuid.uuid4()
    created = await create(rpc, owner)
    query = PromptQuery(owner_id=owner, prompt_id=created.id)
    assert await rpc.call(RPC_PROMPTS_PREPARE_GENERATION, query, Prompt) == created

    async with PromptsUnitOfWork(session_factory) as uow:
        prompt = await uow.prompts.get(owner, created.id, for_update=True)
        assert prompt is not None
        prompt.change_status(PromptStatus.archived, utcnow())
        await uow.prompts.save(prompt)
        await uow.commit()

    with pytest.raises(Conflict) as caught:
        await rpc.call(RPC_PROMPTS_PREPARE_GENERATION, query, Prompt)
    assert "archived" in caught.value.detail
    got = await rpc.call(RPC_PROMPTS_GET, query, Prompt)
    assert got.status is PromptStatus.archived


async def test_a_generation_reserved_again_after_its_release_holds_the_prompt(rpc, session_factory):
    """The images service's second attempt at the same task (its first could not create
    it and let the reservation go): recorded again, so the prompt cannot be deleted."""
    owner = uuid.uuid4()
    created = await create(rpc, owner)
    reservation = GenerationReservation(owner_id=owner, prompt_id=created.id, task_id=uuid.uuid4())
    await rpc.call(RPC_PROMPTS_GENERATION_RESERVE, reservation, Prompt)
    released = await rpc.call(RPC_PROMPTS_GENERATION_RELEASE, reservation, Prompt)
    assert released.active_tasks == 0

    again = await rpc.call(RPC_PROMPTS_GENERATION_RESERVE, reservation, Prompt)

    assert (again.active_tasks, again.generation_state) == (1, GenerationState.generating)
    async with PromptsUnitOfWork(session_factory) as uow:
        phase = await uow.prompts.task_phase(created.id, reservation.task_id)
    assert phase is TaskPhase.RESERVED
    query = PromptQuery(owner_id=owner, prompt_id=created.id)
    with pytest.raises(Conflict) as caught:
        await rpc.call(RPC_PROMPTS_DELETE, query, Prompt)
    assert "1 active generation task" in caught.value.detail
