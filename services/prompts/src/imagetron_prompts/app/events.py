"""Prompts and chats as the contracts show them, and the events announcing their changes."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from uuid import UUID, uuid4

from imagetron_contracts.models import chats as chat_contract
from imagetron_contracts.models import prompts as contract
from imagetron_contracts.models.chats import ChatEventType
from imagetron_contracts.models.prompts import PromptEventType
from imagetron_prompts.app.ports import UnitOfWork
from imagetron_prompts.domain.chat import Chat, ChatMessage
from imagetron_prompts.domain.prompt import Prompt
from imagetron_prompts.domain.stock_rules import StockFinding, check_prompt, find_names
from imagetron_prompts.domain.usage import TokenUsage

__all__ = [
    "ChatEventType",
    "PromptEventType",
    "chat_to_contract",
    "emit_chat_event",
    "emit_prompt_event",
    "prompt_event_subject",
    "to_contract",
    "usage_to_contract",
]


def finding_to_contract(finding: StockFinding) -> contract.StockFinding:
    return contract.StockFinding(
        code=finding.code,
        field=finding.field,
        message=finding.message,
        start=finding.start,
        end=finding.end,
        match=finding.match,
    )


def usage_to_contract(usage: TokenUsage) -> contract.TokenUsage:
    return contract.TokenUsage(
        model=usage.model,
        prompt_tokens=usage.prompt_tokens,
        completion_tokens=usage.completion_tokens,
        total_tokens=usage.total_tokens,
        attempts=max(usage.attempts, 1),
    )


def to_contract(prompt: Prompt) -> contract.Prompt:
    """The prompt with its stock-rule findings, computed now (the word lists may change)."""
    return contract.Prompt(
        id=prompt.id,
        owner_id=prompt.owner_id,
        chat_id=prompt.chat_id,
        text=prompt.text,
        title=prompt.title,
        status=prompt.status,
        generation_state=prompt.generation_state,
        active_tasks=prompt.active_tasks,
        completed_tasks=prompt.completed_tasks,
        failed_tasks=prompt.failed_tasks,
        findings=[finding_to_contract(f) for f in check_prompt(prompt.text, prompt.title)],
        created_at=prompt.created_at,
        updated_at=prompt.updated_at,
    )


def message_to_contract(message: ChatMessage) -> chat_contract.ChatMessage:
    return chat_contract.ChatMessage(
        id=message.id,
        chat_id=message.chat_id,
        position=message.position,
        role=message.role,
        content=message.content,
        subjects=[
            chat_contract.ChatSubject(
                text=subject,
                findings=[
                    finding_to_contract(f)
                    for f in find_names(subject, contract.StockFindingField.text_field)
                ],
            )
            for subject in message.subjects
        ],
        usage=usage_to_contract(message.usage) if message.usage is not None else None,
        created_at=message.created_at,
    )


def chat_summary(chat: Chat) -> chat_contract.ChatSummary:
    return chat_contract.ChatSummary(
        id=chat.id,
        owner_id=chat.owner_id,
        title=chat.title,
        message_count=chat.message_count,
        created_at=chat.created_at,
        updated_at=chat.updated_at,
    )


def chat_to_contract(chat: Chat) -> chat_contract.Chat:
    return chat_contract.Chat(
        id=chat.id,
        owner_id=chat.owner_id,
        title=chat.title,
        message_count=chat.message_count,
        created_at=chat.created_at,
        updated_at=chat.updated_at,
        messages=[message_to_contract(m) for m in chat.messages],
    )


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
        owner_id=prompt.owner_id,
        prompt=to_contract(prompt),
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
        owner_id=chat.owner_id,
        chat=chat_summary(chat),
        messages=[message_to_contract(m) for m in messages],
    )
    await uow.emit(chat_event_subject(chat.owner_id, event_type), event, event.id)
    return event
