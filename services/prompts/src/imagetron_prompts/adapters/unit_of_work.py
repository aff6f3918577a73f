"""The prompts service's unit of work: the platform's, plus the service's repositories."""

from __future__ import annotations

from collections.abc import Callable
from types import TracebackType
from typing import Self

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

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

    def __init__(
        self,
        session_factory: async_sessionmaker[AsyncSession],
        on_commit: Callable[[], None] | None = None,
    ) -> None:
        super().__init__(session_factory, on_commit)
        self._repositories: (
            tuple[SqlPromptRepository, SqlChatRepository, SqlLlmCallRepository] | None
        ) = None

    def _open(self) -> tuple[SqlPromptRepository, SqlChatRepository, SqlLlmCallRepository]:
        if self._repositories is None:
            raise RuntimeError("the unit of work is not open: use `async with uow:`")
        return self._repositories

    @property
    def prompts(self) -> SqlPromptRepository:
        return self._open()[0]

    @property
    def chats(self) -> SqlChatRepository:
        return self._open()[1]

    @property
    def llm_calls(self) -> SqlLlmCallRepository:
        return self._open()[2]

    async def __aenter__(self) -> Self:
        await super().__aenter__()
        session = self.session
        self._repositories = (
            SqlPromptRepository(session),
            SqlChatRepository(session),
            SqlLlmCallRepository(session),
        )
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._repositories = None
        await super().__aexit__(exc_type, exc, tb)
