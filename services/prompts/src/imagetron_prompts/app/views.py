"""Our entities as the contract's models: what the gateway, the events and the UI see."""

from __future__ import annotations

from imagetron_contracts.models import chats as chat_contract
from imagetron_contracts.models import prompts as contract
from imagetron_platform.views import view
from imagetron_prompts.domain.chat import Chat, ChatMessage
from imagetron_prompts.domain.prompt import Prompt
from imagetron_prompts.domain.usage import TokenUsage
from imagetron_stock.rules import StockFinding, check_prompt, find_names


def finding_view(finding: StockFinding) -> contract.StockFinding:
    return view(contract.StockFinding, finding)


def usage_view(usage: TokenUsage) -> contract.TokenUsage:
    return view(contract.TokenUsage, usage, attempts=max(usage.attempts, 1))


def prompt_view(prompt: Prompt) -> contract.Prompt:
    """The prompt with its stock-rule findings, computed now (the word lists may change)."""
    findings = check_prompt(prompt.text, prompt.title)
    return view(contract.Prompt, prompt, findings=[finding_view(f) for f in findings])


def message_view(message: ChatMessage) -> chat_contract.ChatMessage:
    return view(
        chat_contract.ChatMessage,
        message,
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
    )


def chat_summary_view(chat: Chat) -> chat_contract.ChatSummary:
    return view(chat_contract.ChatSummary, chat)


def chat_view(chat: Chat) -> chat_contract.Chat:
    return view(chat_contract.Chat, chat, messages=[message_view(m) for m in chat.messages])
