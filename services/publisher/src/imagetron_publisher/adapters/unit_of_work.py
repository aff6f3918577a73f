"""The publisher's unit of work: the platform's transaction, outbox and inbox, plus our
repositories."""

from __future__ import annotations

from sqlalchemy.ext.asyncio import AsyncSession

from imagetron_platform.db import SqlUnitOfWork
from imagetron_publisher.adapters import tables
from imagetron_publisher.adapters.repositories import (
    SqlAccountRepository,
    SqlBatchRepository,
    SqlImageRepository,
    SqlPublicationRepository,
)


class PublisherUnitOfWork(SqlUnitOfWork):
    outbox = tables.outbox
    inbox = tables.inbox
    images: SqlImageRepository
    publications: SqlPublicationRepository
    batches: SqlBatchRepository
    accounts: SqlAccountRepository

    def open_repositories(self, session: AsyncSession) -> None:
        self.images = SqlImageRepository(session)
        self.publications = SqlPublicationRepository(session)
        self.batches = SqlBatchRepository(session)
        self.accounts = SqlAccountRepository(session)
