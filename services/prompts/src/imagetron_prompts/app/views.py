"""Our entities as the contract's models: what the gateway, the events and the UI see."""

from __future__ import annotations

from imagetron_contracts.models import chats as chat_contract
from imagetron_contracts.models import prompts as contract
from imagetron_prompts.domain.chat import Chat, ChatMessage
from imagetron_prompts.domain.prompt import Prompt
from imagetron_prompts.domain.usage import TokenUsage
from imagetron_stock.rules import StockFinding, check_prompt, find_names


def finding_view(finding: StockFinding) -> contract.StockFinding:
    return contract.StockFinding(
        code=finding.code,
        field=finding.field,
        message=finding.message,
        start=finding.start,
        end=finding.end,
        match=finding.match,
    )


def usage_view(usage: TokenUsage) -> contract.TokenUsage:
    return contract.TokenUsage(
        model=usage.model,
        prompt_tokens=usage.prompt_tokens,
        completion_tokens=usage.completion_tokens,
        total_tokens=usage.total_tokens,
        attempts=max(usage.attempts, 1),
    )


def prompt_view(prompt: Prompt) -> contract.Prompt:
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
        findings=[finding_view(f) for f in check_prompt(prompt.text, prompt.title)],
        created_at=prompt.created_at,
        updated_at=prompt.updated_at,
    )


def message_view(message: ChatMessage) -> chat_contract.ChatMessage:
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
                    finding_view(f)
                    for f in find_names(subject, contract.StockFindingField.text_field)
                ],
            )
            for subject in message.subjects
        ],
        usage=usage_view(message.usage) if message.usage is not None else None,
        created_at=message.created_at,
    )


def chat_summary_view(chat: Chat) -> chat_contract.ChatSummary:
    return chat_contract.ChatSummary(
        id=chat.id,
        owner_id=chat.owner_id,
        title=chat.title,
        message_count=chat.message_count,
        created_at=chat.created_at,
        updated_at=chat.updated_at,
    )


def chat_view(chat: Chat) -> chat_contract.Chat:
    return chat_contract.Chat(
        id=chat.id,
        owner_id=chat.owner_id,
        title=chat.title,
        message_count=chat.message_count,
        created_at=chat.created_at,
        updated_at=chat.updated_at,
        messages=[message_view(m) for m in chat.messages],
    )
