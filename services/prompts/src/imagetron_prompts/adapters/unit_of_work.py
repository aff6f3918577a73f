"""The prompts service's unit of work: the platform's, plus the prompt repository."""

from __future__ import annotations

from collections.abc import Callable
from types import TracebackType
from typing import Self

from imagetron_platform.db import SqlUnitOfWork
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from imagetron_prompts.adapters.repository import SqlPromptRepository
from imagetron_prompts.adapters.tables import inbox, outbox


class PromptsUnitOfWork(SqlUnitOfWork):
    """Not reentrant and not shared: make one per message or request."""

    def __init__(
        self,
        session_factory: async_sessionmaker[AsyncSession],
        on_commit: Callable[[], None] | None = None,
    ) -> None:
        super().__init__(session_factory, outbox, inbox, on_commit)
        self._prompts: SqlPromptRepository | None = None

    @property
    def prompts(self) -> SqlPromptRepository:
        if self._prompts is None:
            raise RuntimeError("the unit of work is not open: use `async with uow:`")
        return self._prompts

    async def __aenter__(self) -> Self:
        await super().__aenter__()
        self._prompts = SqlPromptRepository(self.session)
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._prompts = None
        await super().__aexit__(exc_type, exc, tb)
