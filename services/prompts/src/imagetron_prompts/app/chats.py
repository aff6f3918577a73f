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
    ask,
    chat_conversation,
    check_subjects,
    ledger_entry,
    subject_ideas_for,
)
from imagetron_prompts.app.messages import emit_chat_event, emit_prompt_event
from imagetron_prompts.app.ports import LlmPort, LlmPurpose, UnitOfWork, UnitOfWorkFactory
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
    brief = clean_message(cmd.brief, "brief")  # 422 before the model is asked
    chat = Chat.start(owner_id=cmd.owner_id, brief=brief, now=clock())
    answer = await ask(
        llm,
        new_uow,
        clock,
        purpose=LlmPurpose.CHAT_START,
        owner_id=cmd.owner_id,
        messages=chat_conversation(chat, brief, cmd.count),
        answer_type=subject_ideas_for(cmd.count),
        check=check_subjects,
        chat_id=chat.id,
    )
    call = ledger_entry(
        answer, clock, purpose=LlmPurpose.CHAT_START, owner_id=cmd.owner_id, chat_id=chat.id
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
        await uow.llm_calls.add(call)
        await uow.chats.add(chat)
        await emit_chat_event(uow, chat, ChatEventType.chat_created, now, chat.messages)
        await uow.commit()
    return chat_view(chat)


async def continue_chat(
    cmd: contract.ContinueChatCommand, new_uow: UnitOfWorkFactory, llm: LlmPort, clock: Clock
) -> contract.Chat:
    text = clean_message(cmd.text, "text")
    async with new_uow() as uow:
        chat = await _owned_chat(uow, cmd.owner_id, cmd.chat_id)
    answer = await ask(
        llm,
        new_uow,
        clock,
        purpose=LlmPurpose.CHAT_CONTINUE,
        owner_id=cmd.owner_id,
        messages=chat_conversation(chat, text, cmd.count),
        answer_type=subject_ideas_for(cmd.count),
        check=check_subjects,
        chat_id=chat.id,
    )
    call = ledger_entry(
        answer, clock, purpose=LlmPurpose.CHAT_CONTINUE, owner_id=cmd.owner_id, chat_id=chat.id
    )
    async with new_uow() as uow:
        # Locked and re-read: it may have been deleted, or continued by another request,
        # while the model was thinking; the exchange goes after whatever is there now.
        chat = await _owned_chat(uow, cmd.owner_id, cmd.chat_id, for_update=True)
        now = clock()
        added = chat.add_exchange(
            user_text=text,
            reply=answer.value.reply.strip(),
            subjects=normalize_subjects(answer.value.subjects),
            now=now,
            llm_call_id=call.id,
            usage=answer.usage,
        )
        await uow.llm_calls.add(call)
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
