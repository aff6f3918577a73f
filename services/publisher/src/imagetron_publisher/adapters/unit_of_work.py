"""The publisher's unit of work: the platform's transaction, outbox and inbox, plus our
repositories."""

from __future__ import annotations

from collections.abc import Callable
from typing import Self

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from imagetron_platform.db import SqlUnitOfWork
from imagetron_publisher.adapters.repositories import (
    SqlAccountRepository,
    SqlBatchRepository,
    SqlImageRepository,
    SqlPublicationRepository,
)
from imagetron_publisher.adapters.tables import inbox, outbox


class PublisherUnitOfWork(SqlUnitOfWork):
    images: SqlImageRepository
    publications: SqlPublicationRepository
    batches: SqlBatchRepository
    accounts: SqlAccountRepository

    def __init__(
        self,
        session_factory: async_sessionmaker[AsyncSession],
        on_commit: Callable[[], None] | None = None,
    ) -> None:
        super().__init__(session_factory, outbox, inbox, on_commit=on_commit)

    async def __aenter__(self) -> Self:
        await super().__aenter__()
        self.images = SqlImageRepository(self.session)
        self.publications = SqlPublicationRepository(self.session)
        self.batches = SqlBatchRepository(self.session)
        self.accounts = SqlAccountRepository(self.session)
        return self
