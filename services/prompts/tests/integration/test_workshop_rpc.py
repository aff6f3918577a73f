"""The prompt workshop through `rpc.prompts.*`, as the gateway calls it: real PostgreSQL,
NATS (events through the outbox) and the sandbox as the language model."""

from __future__ import annotations

import asyncio
import time
import uuid

import pytest

from imagetron_contracts.models.chats import (
    Chat,
    ChatPage,
    ChatQuery,
    ChatSummary,
    ContinueChatCommand,
    ListChatsQuery,
    StartChatCommand,
)
from imagetron_contracts.models.images import TaskEventType
from imagetron_contracts.models.prompts import (
    CreatePromptCommand,
    GeneratedPrompts,
    GeneratePromptsCommand,
    ListPromptsQuery,
    Prompt,
    PromptPage,
    PromptQuery,
    PromptStatus,
    SetPromptStatusCommand,
    UpdatePromptCommand,
)
from imagetron_contracts.streams import (
    RPC_PROMPTS_CHATS_CONTINUE,
    RPC_PROMPTS_CHATS_DELETE,
    RPC_PROMPTS_CHATS_GET,
    RPC_PROMPTS_CHATS_LIST,
    RPC_PROMPTS_CHATS_START,
    RPC_PROMPTS_CREATE,
    RPC_PROMPTS_DELETE,
    RPC_PROMPTS_GENERATE,
    RPC_PROMPTS_GET,
    RPC_PROMPTS_LIST,
    RPC_PROMPTS_RETITLE,
    RPC_PROMPTS_SET_STATUS,
    RPC_PROMPTS_UPDATE,
)
from imagetron_platform.errors import Conflict, InvalidRequest, NotFound

from .support import publish, task_event

pytestmark = pytest.mark.integration


async def start(rpc, owner, brief="autumn still lifes for stock", count=None) -> Chat:
    command = StartChatCommand(owner_id=owner, brief=brief, count=count)
    return await rpc.call(RPC_PROMPTS_CHATS_START, command, Chat)


async def generate(rpc, owner, **changes) -> GeneratedPrompts:
    args = {"owner_id": owner, "subject": "a ripe pear on a linen cloth", "count": 3, **changes}
    return await rpc.call(RPC_PROMPTS_GENERATE, GeneratePromptsCommand(**args), GeneratedPrompts)


async def test_chat_to_prompts_to_titles_with_every_change_announced(rpc, tap):
    owner = uuid.uuid4()
    events = await tap(f"events.prompts.{owner}.>")

    chat = await start(rpc, owner, count=4)
    assert chat.title == "autumn still lifes for stock"
    assert [m.role.value for m in chat.messages] == ["user", "assistant"]
    subjects = chat.messages[1].subjects
    assert len(subjects) == 4
    assert chat.messages[1].usage is not None
    assert chat.messages[1].usage.total_tokens > 0

    refined = await rpc.call(
        RPC_PROMPTS_CHATS_CONTINUE,
        ContinueChatCommand(owner_id=owner, chat_id=chat.id, text="only pears please", count=2),
        Chat,
    )
    assert [m.position for m in refined.messages] == [0, 1, 2, 3]
    assert len(refined.messages[3].subjects) == 2
    got = await rpc.call(RPC_PROMPTS_CHATS_GET, ChatQuery(owner_id=owner, chat_id=chat.id), Chat)
    assert got == refined

    subject = refined.messages[3].subjects[0].text
    generated = await generate(rpc, owner, subject=subject, aspect_ratio="3:2", chat_id=chat.id)
    assert len(generated.prompts) == 3
    assert generated.usage.attempts == 1
    for prompt in generated.prompts:
        assert prompt.text.endswith(" --ar 3:2")
        assert prompt.title
        assert len(prompt.title) <= 70
        assert "," not in prompt.title
        assert prompt.chat_id == chat.id
        assert prompt.status is PromptStatus.new

    linked = await rpc.call(
        RPC_PROMPTS_LIST, ListPromptsQuery(owner_id=owner, chat_id=chat.id), PromptPage
    )
    assert {p.id for p in linked.items} == {p.id for p in generated.prompts}

    first = generated.prompts[0]
    query = PromptQuery(owner_id=owner, prompt_id=first.id)
    retitled = await rpc.call(RPC_PROMPTS_RETITLE, query, Prompt)
    assert retitled.title != first.title
    again = await rpc.call(RPC_PROMPTS_RETITLE, query, Prompt)
    assert again.title != retitled.title

    summary = await rpc.call(
        RPC_PROMPTS_CHATS_DELETE, ChatQuery(owner_id=owner, chat_id=chat.id), ChatSummary
    )
    assert summary.id == chat.id
    with pytest.raises(NotFound):
        await rpc.call(RPC_PROMPTS_CHATS_GET, ChatQuery(owner_id=owner, chat_id=chat.id), Chat)
    survivor = await rpc.call(RPC_PROMPTS_GET, query, Prompt)
    assert survivor.chat_id is None
    assert survivor.title == again.title

    expected = [
        "chat.created",
        "chat.updated",
        *["prompt.created"] * 3,
        "prompt.updated",
        "prompt.updated",
        *["prompt.updated"] * 3,  # unlinked from the deleted chat
        "chat.deleted",
    ]
    seen = await events.wait_for(len(expected))
    assert [m.subject.split(".", 3)[3] for m in seen] == expected
    assert all(m.msg_id == m.body["id"] for m in seen)
    assert [m.body["type"] for m in seen] == expected
    assert seen[0].body["chat"]["id"] == str(chat.id)
    assert [m["position"] for m in seen[1].body["messages"]] == [2, 3]


async def test_chats_are_owner_scoped(rpc):
    owner, stranger = uuid.uuid4(), uuid.uuid4()
    chat = await start(rpc, owner)
    query = ChatQuery(owner_id=stranger, chat_id=chat.id)
    with pytest.raises(NotFound):
        await rpc.call(RPC_PROMPTS_CHATS_GET, query, Chat)
    with pytest.raises(NotFound):
        await rpc.call(RPC_PROMPTS_CHATS_DELETE, query, ChatSummary)
    with pytest.raises(NotFound):
        await rpc.call(
            RPC_PROMPTS_CHATS_CONTINUE,
            ContinueChatCommand(owner_id=stranger, chat_id=chat.id, text="mine"),
            Chat,
        )
    with pytest.raises(NotFound):
        await generate(rpc, stranger, chat_id=chat.id)
    page = await rpc.call(RPC_PROMPTS_CHATS_LIST, ListChatsQuery(owner_id=stranger), ChatPage)
    assert page.items == []


async def test_chats_list_newest_first_in_pages(rpc):
    owner = uuid.uuid4()
    created = [await start(rpc, owner, brief=f"brief number {i}") for i in range(3)]
    seen, cursor = [], None
    while True:
        page = await rpc.call(
            RPC_PROMPTS_CHATS_LIST,
            ListChatsQuery(owner_id=owner, limit=2, cursor=cursor),
            ChatPage,
        )
        seen += [c.id for c in page.items]
        assert all(c.message_count == 2 for c in page.items)
        cursor = page.next_cursor
        if cursor is None:
            break
    assert seen == [c.id for c in reversed(created)]


async def test_slow_answers_are_handled_side_by_side(rpc):
    """LLM-backed subjects take several requests at once (`llm_concurrency`)."""
    owner = uuid.uuid4()
    started = time.monotonic()
    chats = await asyncio.gather(
        *(start(rpc, owner, brief=f"pears {i} --sandbox-chat-delay=700") for i in range(4))
    )
    assert len({c.id for c in chats}) == 4
    assert time.monotonic() - started < 2.0  # one after another would take 2.8 s


async def test_concurrent_refinements_of_one_chat_all_land_in_order(rpc):
    owner = uuid.uuid4()
    chat = await start(rpc, owner)
    await asyncio.gather(
        *(
            rpc.call(
                RPC_PROMPTS_CHATS_CONTINUE,
                ContinueChatCommand(owner_id=owner, chat_id=chat.id, text=f"variant {i}"),
                Chat,
            )
            for i in range(3)
        )
    )
    final = await rpc.call(RPC_PROMPTS_CHATS_GET, ChatQuery(owner_id=owner, chat_id=chat.id), Chat)
    assert final.message_count == 8
    assert [m.position for m in final.messages] == list(range(8))
    assert [m.role.value for m in final.messages] == ["user", "assistant"] * 4
    asked = sorted(m.content for m in final.messages[2::2])
    assert asked == ["variant 0", "variant 1", "variant 2"]


async def test_a_bad_generate_request_is_422_before_the_model(rpc):
    with pytest.raises(InvalidRequest):
        await generate(rpc, uuid.uuid4(), subject="   ")


async def create(rpc, owner, text, title=None) -> Prompt:
    return await rpc.call(
        RPC_PROMPTS_CREATE, CreatePromptCommand(owner_id=owner, text=text, title=title), Prompt
    )


async def test_edit_status_and_filters(rpc, tap):
    owner = uuid.uuid4()
    events = await tap(f"events.prompts.{owner}.prompt.updated")
    pear = await create(rpc, owner, "a pear in the style of Banksy", title="Pear")
    fig = await create(rpc, owner, "100% fig_tree", title="Fig")
    assert [f.code.value for f in pear.findings] == ["artist_name"]

    edited = await rpc.call(
        RPC_PROMPTS_UPDATE,
        UpdatePromptCommand(
            owner_id=owner, prompt_id=pear.id, text="a pear on slate", clear_title=True
        ),
        Prompt,
    )
    assert (edited.text, edited.title) == ("a pear on slate", None)
    assert [f.code.value for f in edited.findings] == ["title_missing"]
    approved = await rpc.call(
        RPC_PROMPTS_SET_STATUS,
        SetPromptStatusCommand(owner_id=owner, prompt_id=fig.id, status=PromptStatus.approved),
        Prompt,
    )
    assert approved.status is PromptStatus.approved
    assert len(await events.wait_for(2)) == 2

    async def ids(**filters) -> set[uuid.UUID]:
        page = await rpc.call(
            RPC_PROMPTS_LIST, ListPromptsQuery(owner_id=owner, **filters), PromptPage
        )
        return {p.id for p in page.items}

    assert await ids(status=PromptStatus.approved) == {fig.id}
    assert await ids(q="SLATE") == {pear.id}
    assert await ids(q="fig") == {fig.id}
    # LIKE wildcards in the search are literal characters.
    assert await ids(q="100%") == {fig.id}
    assert await ids(q="%") == {fig.id}
    assert await ids(q="g_t") == {fig.id}
    assert await ids(q="_") == {fig.id}
    assert await ids(q="r_s") == set()
    with pytest.raises(NotFound):
        await rpc.call(
            RPC_PROMPTS_UPDATE,
            UpdatePromptCommand(owner_id=uuid.uuid4(), prompt_id=fig.id, text="mine"),
            Prompt,
        )


async def test_delete_is_refused_while_a_task_is_active(rpc, js, consumed, tap):
    owner = uuid.uuid4()
    prompt = await create(rpc, owner, "a lighthouse at dusk")
    query = PromptQuery(owner_id=owner, prompt_id=prompt.id)
    task_id = uuid.uuid4()
    await publish(js, task_event(owner, prompt.id, task_id, TaskEventType.task_created))
    await consumed()
    with pytest.raises(Conflict) as caught:
        await rpc.call(RPC_PROMPTS_DELETE, query, Prompt)
    assert "active generation task" in caught.value.detail

    await publish(js, task_event(owner, prompt.id, task_id, TaskEventType.task_completed))
    await consumed()
    deleted_events = await tap(f"events.prompts.{owner}.prompt.deleted")
    deleted = await rpc.call(RPC_PROMPTS_DELETE, query, Prompt)
    assert deleted.completed_tasks == 1
    with pytest.raises(NotFound):
        await rpc.call(RPC_PROMPTS_GET, query, Prompt)
    [event] = await deleted_events.wait_for(1)
    assert event.body["prompt"]["id"] == str(prompt.id)
    with pytest.raises(NotFound):
        await rpc.call(RPC_PROMPTS_DELETE, query, Prompt)
