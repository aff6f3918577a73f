"""The prompts service's unit of work: the platform's transaction, outbox and inbox, plus our
repositories."""

from __future__ import annotations

from sqlalchemy.ext.asyncio import AsyncSession

from imagetron_platform.db import SqlUnitOfWork
from imagetron_prompts.adapters import tables
from imagetron_prompts.adapters.repository import (
    SqlChatRepository,
    SqlLlmCallRepository,
    SqlPromptRepository,
)


class PromptsUnitOfWork(SqlUnitOfWork):
    """Not reentrant and not shared: make one per message or request."""

    outbox = tables.outbox
    inbox = tables.inbox
    prompts: SqlPromptRepository
    chats: SqlChatRepository
    llm_calls: SqlLlmCallRepository

    def open_repositories(self, session: AsyncSession) -> None:
        self.prompts = SqlPromptRepository(session)
        self.chats = SqlChatRepository(session)
        self.llm_calls = SqlLlmCallRepository(session)
