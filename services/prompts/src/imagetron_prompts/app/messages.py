"""Everything the prompts service sends, written through the unit of work's outbox: the
contract's events on `events.prompts.<owner_id>.<type>`, each with a fresh id that the relay
also uses as its `Nats-Msg-Id`."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from uuid import UUID, uuid4

from imagetron_contracts.models import chats as chat_contract
from imagetron_contracts.models import prompts as contract
from imagetron_contracts.models.chats import ChatEventType
from imagetron_contracts.models.prompts import PromptEventType
from imagetron_prompts.app.ports import UnitOfWork
from imagetron_prompts.app.views import chat_summary_view, message_view, prompt_view
from imagetron_prompts.domain.chat import Chat, ChatMessage
from imagetron_prompts.domain.prompt import Prompt


def prompt_event_subject(owner_id: UUID, event_type: PromptEventType) -> str:
    """`events.prompts.<owner_id>.prompt.<created|updated|deleted>` (asyncapi
    `events_prompts_prompt`)."""
    return f"events.prompts.{owner_id}.{event_type.value}"


def chat_event_subject(owner_id: UUID, event_type: ChatEventType) -> str:
    """`events.prompts.<owner_id>.chat.<created|updated|deleted>` (asyncapi
    `events_prompts_chat`)."""
    return f"events.prompts.{owner_id}.{event_type.value}"


async def emit_prompt_event(
    uow: UnitOfWork, prompt: Prompt, event_type: PromptEventType, now: datetime
) -> contract.PromptEvent:
    """Queue the event in the unit of work's outbox; it is published once the work commits."""
    event = contract.PromptEvent(
        id=uuid4(),
        type=event_type,
        occurred_at=now,
        version=prompt.version,
        owner_id=prompt.owner_id,
        prompt=prompt_view(prompt),
    )
    await uow.emit(prompt_event_subject(prompt.owner_id, event_type), event, event.id)
    return event


async def emit_chat_event(
    uow: UnitOfWork,
    chat: Chat,
    event_type: ChatEventType,
    now: datetime,
    messages: Sequence[ChatMessage] = (),
) -> chat_contract.ChatEvent:
    event = chat_contract.ChatEvent(
        id=uuid4(),
        type=event_type,
        occurred_at=now,
        version=chat.version,
        owner_id=chat.owner_id,
        chat=chat_summary_view(chat),
        messages=[message_view(m) for m in messages],
    )
    await uow.emit(chat_event_subject(chat.owner_id, event_type), event, event.id)
    return event
