"""The images unit of work: the platform's transaction, outbox and inbox, plus our repositories."""

from __future__ import annotations

from collections.abc import Callable
from typing import Self

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from imagetron_images.adapters.repositories import SqlImageRepository, SqlTaskRepository
from imagetron_images.adapters.tables import inbox, outbox
from imagetron_platform.db import SqlUnitOfWork


class ImagesUnitOfWork(SqlUnitOfWork):
    tasks: SqlTaskRepository
    images: SqlImageRepository

    def __init__(
        self,
        session_factory: async_sessionmaker[AsyncSession],
        on_commit: Callable[[], None] | None = None,
    ) -> None:
        super().__init__(session_factory, outbox, inbox, on_commit=on_commit)

    async def __aenter__(self) -> Self:
        await super().__aenter__()
        self.tasks = SqlTaskRepository(self.session)
        self.images = SqlImageRepository(self.session)
        return self
