"""Everything the publisher sends, written through the unit of work's outbox: publication
events on `events.publisher.<owner_id>.publication.<type>`, and its own jobs on WORK."""

from __future__ import annotations

from collections.abc import Iterable
from uuid import uuid4

from imagetron_contracts.models.publications import (
    PublicationEvent,
    PublicationStatus,
    SuggestMetadataJob,
    UploadBatchCsvJob,
    UploadPublicationJob,
)
from imagetron_contracts.streams import (
    WORK_PUBLISHER_CSV,
    WORK_PUBLISHER_SUGGEST,
    WORK_PUBLISHER_UPLOAD,
)
from imagetron_publisher.app.ports import UnitOfWork
from imagetron_publisher.app.views import publication_view
from imagetron_publisher.domain.batch import Batch
from imagetron_publisher.domain.publication import Publication, PublicationChange

#: The channel's address in contracts/asyncapi.yaml.
PUBLICATION_EVENTS = "events.publisher.{owner_id}.publication.{event_type}"


async def announce(uow: UnitOfWork, changes: Iterable[PublicationChange | None]) -> None:
    """Emit each change as its event, and queue the upload of what became queued."""
    for change in changes:
        if change is None:
            continue
        publication = change.publication
        event_id = uuid4()
        event = PublicationEvent(
            id=event_id,
            type=change.type,
            occurred_at=change.occurred_at,
            version=publication.version,
            owner_id=publication.owner_id,
            publication=publication_view(publication),
        )
        subject = f"events.publisher.{publication.owner_id}.{change.type.value}"
        await uow.emit(subject, event, event_id)
        if change.type.value == f"publication.{PublicationStatus.queued.value}":
            await enqueue_upload(uow, publication)


async def enqueue_upload(uow: UnitOfWork, publication: Publication) -> None:
    job = UploadPublicationJob(publication_id=publication.id, owner_id=publication.owner_id)
    await uow.emit(WORK_PUBLISHER_UPLOAD, job, uuid4())


async def enqueue_suggestion(uow: UnitOfWork, publication: Publication) -> None:
    job = SuggestMetadataJob(publication_id=publication.id, owner_id=publication.owner_id)
    await uow.emit(WORK_PUBLISHER_SUGGEST, job, uuid4())


async def enqueue_csv(uow: UnitOfWork, batch: Batch) -> None:
    job = UploadBatchCsvJob(batch_id=batch.id, owner_id=batch.owner_id)
    await uow.emit(WORK_PUBLISHER_CSV, job, uuid4())
