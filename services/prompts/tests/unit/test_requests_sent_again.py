"""A creating request sent again with its request id (its first answer was lost: the
prompts replica died before answering, or answered after the gateway's deadline, 504):
it answers what the first attempt created. Before request ids, it created a second prompt,
chat, exchange or batch of generated prompts, asked the language model (and paid for it)
again and announced the copy."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from datetime import timedelta
from typing import Any
from uuid import UUID

import pytest

from imagetron_contracts.models.chats import ContinueChatCommand, StartChatCommand
from imagetron_contracts.models.prompts import (
    CreatePromptCommand,
    GeneratePromptsCommand,
    PromptQuery,
)
from imagetron_platform.errors import Gone
from imagetron_prompts.app import chats, prompts, workshop
from imagetron_prompts.app.ports import LlmMessage
from imagetron_prompts.app.requested import chat_id_for, llm_call_id_for, prompt_id_for

ALICE = UUID("00000000-0000-4000-8000-00000000a11c")
BOB = UUID("00000000-0000-4000-8000-000000000b0b")


def ideas(*subjects: str) -> dict[str, Any]:
    return {"reply": "Here are some ideas.", "subjects": list(subjects)}


def drafts(count: int) -> dict[str, Any]:
    return {
        "prompts": [
            {"subject": f"a ripe pear number {i} on linen", "style": "oil painting",
             "lighting": "soft window light", "composition": "close-up",
             "title": f"Ripe pear {i} on linen"}
            for i in range(count)
        ]
    }  # fmt: skip


def announced(store: Any, kind: str) -> list[str]:
    return [e.subject for e in store.outbox if e.subject.endswith(kind)]


class FirstAttemptMeanwhile:
    """The model, answering this attempt once `first` (the same request's first attempt)
    has recorded what it created: both attempts found nothing before asking."""

    def __init__(self, llm: Any, first: Callable[[], Awaitable[Any]]) -> None:
        self._llm = llm
        self._first: Callable[[], Awaitable[Any]] | None = first

    async def answer(
        self, messages: Sequence[LlmMessage], answer_type: type[Any], **kwargs: Any
    ) -> Any:
        answer = await self._llm.answer(messages, answer_type, **kwargs)
        if self._first is not None:
            first, self._first = self._first, None
            await first()
        return answer


# --- creating a prompt -----------------------------------------------------------------


async def create(deps: Any, request_id: str | None, owner: UUID = ALICE) -> Any:
    cmd = CreatePromptCommand(owner_id=owner, text="a pear on slate", request_id=request_id)
    return await prompts.create_prompt(cmd, deps.new_uow(), deps.clock)


async def test_a_prompt_created_again_is_the_prompt_the_first_attempt_created(deps, store):
    first = await create(deps, "request-1")
    again = await create(deps, "request-1")
    assert again.id == first.id == prompt_id_for(ALICE, "request-1")
    assert list(store.committed.prompts) == [first.id]
    assert len(announced(store, "prompt.created")) == 1


async def test_other_requests_and_requests_without_an_id_are_new_prompts(deps, store):
    made = [await create(deps, r) for r in ("request-1", "request-2", None, None)]
    made.append(await create(deps, "request-1", owner=BOB))  # another owner's request
    assert len({p.id for p in made}) == len(store.committed.prompts) == 5


async def test_a_prompt_created_again_after_it_was_deleted_is_gone(deps, store):
    first = await create(deps, "request-1")
    await prompts.delete_prompt(
        PromptQuery(owner_id=ALICE, prompt_id=first.id), deps.new_uow(), deps.clock
    )
    with pytest.raises(Gone) as gone:
        await create(deps, "request-1")
    assert str(first.id) in gone.value.detail
    assert store.committed.prompts == {}  # not created again
    assert len(announced(store, "prompt.created")) == 1
    assert (await create(deps, "request-2")).id != first.id  # a new request is a new prompt
    await create(deps, "request-1", owner=BOB)  # Bob's request of the same id is his own


async def test_a_prompt_deleted_between_the_insert_and_the_read_is_gone_not_missing(deps, store):
    """In PostgreSQL the insert that finds the first attempt's row does not lock it: a
    delete can commit before the create reads the row. That is the same late retry, a 410,
    not a 404 (the prompt existed: this request created it)."""
    first = await create(deps, "request-1")
    fake = type(deps.new_uow())

    class DeletedMeanwhile(fake):  # type: ignore[misc, valid-type]
        def open_repositories(self, state: Any) -> None:
            super().open_repositories(state)
            repository, insert = self.prompts, self.prompts.add

            async def add(prompt: Any) -> bool:
                added = await insert(prompt)
                await repository.delete(state.prompts[prompt.id])  # another transaction's
                return added

            repository.add = add  # type: ignore[method-assign]

    cmd = CreatePromptCommand(owner_id=ALICE, text="a pear on slate", request_id="request-1")
    with pytest.raises(Gone) as gone:
        await prompts.create_prompt(cmd, DeletedMeanwhile(store), deps.clock)
    assert str(first.id) in gone.value.detail


async def test_a_deleted_prompt_is_forgotten_after_a_while(deps, store):
    first = await create(deps, "request-1")
    await prompts.delete_prompt(
        PromptQuery(owner_id=ALICE, prompt_id=first.id), deps.new_uow(), deps.clock
    )
    memory = timedelta(days=30)
    assert await prompts.forget_deleted_prompts(deps.new_uow(), deps.clock, older_than=memory) == 0
    with pytest.raises(Gone):
        await create(deps, "request-1")
    forgotten = await prompts.forget_deleted_prompts(
        deps.new_uow(), lambda: deps.clock() + memory + timedelta(seconds=1), older_than=memory
    )
    assert forgotten == 1
    assert (await create(deps, "request-1")).id == first.id  # bounded memory: created again


# --- starting and continuing a chat --------------------------------------------------------


async def start(deps: Any, request_id: str | None, llm: Any = None) -> Any:
    cmd = StartChatCommand(owner_id=ALICE, brief="pears for stock", request_id=request_id)
    return await chats.start_chat(cmd, deps.new_uow, llm or deps.llm, deps.clock)


async def test_a_chat_started_again_is_the_chat_the_first_attempt_started(deps, store, llm):
    llm.answers(ideas("pears on slate"))  # once: asked again, the model fails the test
    first = await start(deps, "request-1")
    again = await start(deps, "request-1")
    assert again == first
    assert first.id == chat_id_for(ALICE, "request-1")
    assert list(store.committed.chats) == [first.id]
    assert len(llm.asked) == 1
    assert [c.id for c in store.committed.llm_calls] == [llm_call_id_for(ALICE, "request-1")]
    assert len(announced(store, "chat.created")) == 1


async def test_a_chat_started_again_while_the_first_is_recorded_gets_its_chat(deps, store, llm):
    llm.answers(ideas("pears on slate"), ideas("figs"))
    second = await start(
        deps, "request-1", FirstAttemptMeanwhile(llm, lambda: start(deps, "request-1"))
    )
    assert list(store.committed.chats) == [second.id]
    [message] = [m for m in second.messages if m.subjects]
    assert [s.text for s in message.subjects] == ["figs"]  # the first attempt's answer
    assert len(store.committed.llm_calls) == 1
    assert len(announced(store, "chat.created")) == 1


async def test_chats_of_other_requests_are_new_chats(deps, store, llm):
    llm.answers(ideas("a"), ideas("b"), ideas("c"))
    made = {(await start(deps, r)).id for r in ("request-1", "request-2", None)}
    assert len(made) == len(store.committed.chats) == 3


async def proceed(deps: Any, chat_id: UUID, request_id: str | None, llm: Any = None) -> Any:
    cmd = ContinueChatCommand(
        owner_id=ALICE, chat_id=chat_id, text="only green pears", request_id=request_id
    )
    return await chats.continue_chat(cmd, deps.new_uow, llm or deps.llm, deps.clock)


async def test_an_exchange_sent_again_is_added_once(deps, store, llm):
    llm.answers(ideas("pears on slate"), ideas("green pears"))
    chat = await start(deps, "start")
    first = await proceed(deps, chat.id, "continue")
    again = await proceed(deps, chat.id, "continue")
    assert again == first
    assert store.committed.chats[chat.id].message_count == 4
    assert len(llm.asked) == 2
    assert len(announced(store, "chat.updated")) == 1


async def test_an_exchange_sent_again_while_the_first_is_recorded_is_added_once(deps, store, llm):
    llm.answers(ideas("pears on slate"), ideas("green pears"), ideas("greener pears"))
    chat = await start(deps, "start")
    first = FirstAttemptMeanwhile(llm, lambda: proceed(deps, chat.id, "continue"))
    again = await proceed(deps, chat.id, "continue", first)
    assert [m.position for m in again.messages] == [0, 1, 2, 3]
    assert store.committed.chats[chat.id].message_count == 4
    assert len(store.committed.llm_calls) == 2  # the start and one exchange
    assert len(announced(store, "chat.updated")) == 1


async def test_exchanges_of_other_requests_are_added(deps, store, llm):
    llm.answers(ideas("a"), ideas("b"), ideas("c"), ideas("d"))
    chat = await start(deps, "start")
    for request_id in ("one", "two", None):
        await proceed(deps, chat.id, request_id)
    assert store.committed.chats[chat.id].message_count == 8


# --- generating prompts -------------------------------------------------------------------


async def generate(deps: Any, request_id: str | None, llm: Any = None) -> Any:
    cmd = GeneratePromptsCommand(
        owner_id=ALICE, subject="a ripe pear", count=3, request_id=request_id
    )
    return await workshop.generate_prompts(cmd, deps.new_uow, llm or deps.llm, deps.clock)


async def test_prompts_generated_again_are_the_prompts_the_first_attempt_made(deps, store, llm):
    llm.answers(drafts(3))
    first = await generate(deps, "request-1")
    again = await generate(deps, "request-1")
    assert again == first
    assert [p.id for p in first.prompts] == [prompt_id_for(ALICE, "request-1", i) for i in range(3)]
    assert len(store.committed.prompts) == 3
    assert len(llm.asked) == 1
    assert len(store.committed.llm_calls) == 1
    assert len(announced(store, "prompt.created")) == 3


async def test_prompts_generated_again_while_the_first_are_recorded(deps, store, llm):
    llm.answers(drafts(3), drafts(3))
    second = await generate(
        deps, "request-1", FirstAttemptMeanwhile(llm, lambda: generate(deps, "request-1"))
    )
    assert [p.id for p in second.prompts] == list(store.committed.prompts)
    assert len(store.committed.prompts) == 3
    assert len(store.committed.llm_calls) == 1
    assert len(announced(store, "prompt.created")) == 3


async def test_generations_of_other_requests_are_new_prompts(deps, store, llm):
    llm.answers(drafts(3), drafts(3), drafts(3))
    for request_id in ("request-1", "request-2", None):
        await generate(deps, request_id)
    assert len(store.committed.prompts) == 9
