"""Subject chats: start with a brief, continue to refine, read, list, delete.

Starting and continuing ask the language model with no transaction open, then write the
whole exchange (both messages, the call's ledger entry and the event) in one transaction:
a chat never holds a question without its answer, and a failed answer leaves no trace
but its ledger entry.
"""

from __future__ import annotations

from uuid import UUID

from imagetron_contracts.models import chats as contract
from imagetron_contracts.models.chats import ChatEventType
from imagetron_contracts.models.prompts import PromptEventType
from imagetron_platform.clock import Clock
from imagetron_platform.errors import NotFound
from imagetron_platform.pagination import Cursors, PageKey, page_size
from imagetron_prompts.app.assistant import (
    SubjectIdeas,
    ask,
    chat_conversation,
    check_subjects,
    ledger_entry,
    subject_ideas_for,
)
from imagetron_prompts.app.messages import emit_chat_event, emit_prompt_event
from imagetron_prompts.app.ports import (
    LlmAnswer,
    LlmCall,
    LlmPort,
    LlmPurpose,
    UnitOfWork,
    UnitOfWorkFactory,
)
from imagetron_prompts.app.requested import chat_id_for, recorded_call, requested_call
from imagetron_prompts.app.views import chat_summary_view, chat_view
from imagetron_prompts.domain.chat import Chat, clean_message, normalize_subjects

CHAT_CURSORS = Cursors(PageKey)


async def _owned_chat(
    uow: UnitOfWork,
    owner_id: UUID,
    chat_id: UUID,
    *,
    for_update: bool = False,
    messages: bool = True,
) -> Chat:
    chat = await uow.chats.get(owner_id, chat_id, for_update=for_update, messages=messages)
    if chat is None:
        # The same answer whether it does not exist or belongs to someone else.
        raise NotFound(f"Chat {chat_id} does not exist.")
    return chat


async def start_chat(
    cmd: contract.StartChatCommand, new_uow: UnitOfWorkFactory, llm: LlmPort, clock: Clock
) -> contract.Chat:
    """A chat with its first exchange; sent again with its `request_id`, the chat the first
    attempt started, as it is now, without asking the model again."""
    brief = clean_message(cmd.brief, "brief")  # 422 before the model is asked
    chat_id = chat_id_for(cmd.owner_id, cmd.request_id)
    if await recorded_call(new_uow, cmd.owner_id, cmd.request_id):
        return await _chat_before(cmd.owner_id, chat_id, new_uow)
    chat = Chat.start(owner_id=cmd.owner_id, brief=brief, now=clock(), chat_id=chat_id)
    answer, call = await _ask_for_subjects(
        cmd, chat, brief, LlmPurpose.CHAT_START, new_uow, llm, clock
    )
    now = clock()
    chat.add_exchange(
        user_text=brief,
        reply=answer.value.reply.strip(),
        subjects=normalize_subjects(answer.value.subjects),
        now=now,
        llm_call_id=call.id,
        usage=answer.usage,
    )
    async with new_uow() as uow:
        if await uow.llm_calls.add(call):
            await uow.chats.add(chat)
            await emit_chat_event(uow, chat, ChatEventType.chat_created, now, chat.messages)
            await uow.commit()
            return chat_view(chat)
    # Another attempt at the same request recorded it meanwhile.
    return await _chat_before(cmd.owner_id, chat.id, new_uow)


async def _ask_for_subjects(
    cmd: contract.StartChatCommand | contract.ContinueChatCommand,
    chat: Chat,
    text: str,
    purpose: LlmPurpose,
    new_uow: UnitOfWorkFactory,
    llm: LlmPort,
    clock: Clock,
) -> tuple[LlmAnswer[SubjectIdeas], LlmCall]:
    """The model's answer to the artist's `text` in the chat, and its ledger entry (under the
    id the request names) to write with the exchange."""
    answer = await ask(
        llm,
        new_uow,
        clock,
        purpose=purpose,
        owner_id=cmd.owner_id,
        messages=chat_conversation(chat, text, cmd.count),
        answer_type=subject_ideas_for(cmd.count),
        check=check_subjects,
        chat_id=chat.id,
    )
    ledger = ledger_entry(answer, clock, purpose=purpose, owner_id=cmd.owner_id, chat_id=chat.id)
    return answer, requested_call(ledger, cmd.request_id)


async def _chat_before(owner_id: UUID, chat_id: UUID, new_uow: UnitOfWorkFactory) -> contract.Chat:
    """The chat a request sent again started or continued the first time, as it is now (404
    if it was deleted since)."""
    async with new_uow() as uow:
        return chat_view(await _owned_chat(uow, owner_id, chat_id))


async def continue_chat(
    cmd: contract.ContinueChatCommand, new_uow: UnitOfWorkFactory, llm: LlmPort, clock: Clock
) -> contract.Chat:
    """The chat with one more exchange; sent again with its `request_id`, the chat as it is
    now (with the exchange the first attempt added once), without asking the model again."""
    text = clean_message(cmd.text, "text")
    if await recorded_call(new_uow, cmd.owner_id, cmd.request_id):
        return await _chat_before(cmd.owner_id, cmd.chat_id, new_uow)
    async with new_uow() as uow:
        chat = await _owned_chat(uow, cmd.owner_id, cmd.chat_id)
    answer, call = await _ask_for_subjects(
        cmd, chat, text, LlmPurpose.CHAT_CONTINUE, new_uow, llm, clock
    )
    async with new_uow() as uow:
        # Locked and re-read: it may have been deleted, or continued by another request,
        # while the model was thinking; the exchange goes after whatever is there now.
        chat = await _owned_chat(uow, cmd.owner_id, cmd.chat_id, for_update=True)
        if not await uow.llm_calls.add(call):  # another attempt at the request recorded it
            return chat_view(chat)
        now = clock()
        added = chat.add_exchange(
            user_text=text,
            reply=answer.value.reply.strip(),
            subjects=normalize_subjects(answer.value.subjects),
            now=now,
            llm_call_id=call.id,
            usage=answer.usage,
        )
        await uow.chats.add_messages(chat, added)
        await emit_chat_event(uow, chat, ChatEventType.chat_updated, now, added)
        await uow.commit()
    return chat_view(chat)


async def get_chat(query: contract.ChatQuery, uow: UnitOfWork) -> contract.Chat:
    async with uow:
        chat = await _owned_chat(uow, query.owner_id, query.chat_id)
    return chat_view(chat)


async def list_chats(query: contract.ListChatsQuery, uow: UnitOfWork) -> contract.ChatPage:
    limit = page_size(query.limit)
    async with uow:
        rows = await uow.chats.list_page(
            query.owner_id, limit=limit + 1, after=CHAT_CURSORS.after(query.cursor)
        )
    page = CHAT_CURSORS.page(rows, limit, lambda c: PageKey(c.created_at, c.id))
    return contract.ChatPage(
        items=[chat_summary_view(c) for c in page.items], next_cursor=page.next_cursor
    )


async def delete_chat(
    query: contract.ChatQuery, uow: UnitOfWork, clock: Clock
) -> contract.ChatSummary:
    """Delete a chat and its messages. Its prompts stay, unlinked, each announced with
    `prompt.updated`; then `chat.deleted`."""
    async with uow:
        chat = await _owned_chat(
            uow, query.owner_id, query.chat_id, for_update=True, messages=False
        )
        now = clock()
        for prompt in await uow.prompts.linked_to_chat(query.owner_id, chat.id):
            prompt.unlink_chat(now)
            await uow.prompts.save(prompt)
            await emit_prompt_event(uow, prompt, PromptEventType.prompt_updated, now)
        chat.delete(now)
        await uow.chats.delete(chat)
        await emit_chat_event(uow, chat, ChatEventType.chat_deleted, now)
        await uow.commit()
    return chat_summary_view(chat)
