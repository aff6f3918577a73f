"""The images unit of work: the platform's transaction, outbox and inbox, plus our repositories."""

from __future__ import annotations

from sqlalchemy.ext.asyncio import AsyncSession

from imagetron_images.adapters.repositories import SqlImageRepository, SqlTaskRepository
from imagetron_images.adapters.tables import inbox, outbox
from imagetron_platform.db import SqlUnitOfWork


class ImagesUnitOfWork(SqlUnitOfWork):
    outbox = outbox
    inbox = inbox
    tasks: SqlTaskRepository
    images: SqlImageRepository

    def open_repositories(self, session: AsyncSession) -> None:
        self.tasks = SqlTaskRepository(session)
        self.images = SqlImageRepository(session)
