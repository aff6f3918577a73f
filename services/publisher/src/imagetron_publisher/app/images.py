"""The read model of stored images, kept from the images service's events, and what an
image's readiness for an agency is."""

from __future__ import annotations

import logging
from enum import StrEnum

from imagetron_contracts.models.images import ImageEvent
from imagetron_contracts.models.prompts import StockFindingField
from imagetron_contracts.models.publications import FileType, Readiness, ReadinessQuery
from imagetron_platform.errors import NotFound
from imagetron_publisher.app.ports import UnitOfWork
from imagetron_publisher.app.views import finding_view
from imagetron_publisher.domain.publication import StoredImage, default_metadata, evaluate
from imagetron_stock.files import megapixels
from imagetron_stock.rules import check_title, find_names

log = logging.getLogger(__name__)

#: The durable consumer on image events, and the inbox consumer name.
IMAGE_EVENTS_CONSUMER = "publisher-image-events"


class ImageEventOutcome(StrEnum):
    RECORDED = "recorded"
    DUPLICATE = "duplicate"
    IGNORED = "ignored"


async def apply_image_event(event: ImageEvent, uow: UnitOfWork) -> ImageEventOutcome:
    """Record a stored image (`image.persisted`); anything else is acknowledged and left.
    Idempotent by event id (inbox), and by image id (a stored image stays stored)."""
    image = event.image
    if event.type != "image.persisted":
        return ImageEventOutcome.IGNORED
    if (
        not image.is_persisted
        or event.storage_key is None
        or None in (image.width, image.height, image.bytes, image.content_type, image.sha256)
    ):
        # Written before image events carried the storage key: nothing we could read.
        log.warning("image event %s lacks what a stored image needs; skipped", event.id)
        return ImageEventOutcome.IGNORED
    async with uow:
        if not await uow.claim(IMAGE_EVENTS_CONSUMER, str(event.id)):
            return ImageEventOutcome.DUPLICATE
        await uow.images.add(
            StoredImage(
                id=image.id,
                owner_id=event.owner_id,
                task_id=image.task_id,
                prompt_id=image.prompt_id,
                kind=image.kind,
                index=image.index,
                width=image.width or 0,
                height=image.height or 0,
                size_bytes=image.bytes or 0,
                content_type=image.content_type or "",
                sha256=image.sha256 or "",
                storage_key=event.storage_key,
                prompt_text=event.prompt_text or "",
                prompt_title=event.prompt_title,
                persisted_at=image.persisted_at or event.occurred_at,
            )
        )
        await uow.commit()
    return ImageEventOutcome.RECORDED


def suggested_file_type(image: StoredImage) -> FileType:
    """Without the model's opinion: photographs are asked for as such in the prompt."""
    words = image.prompt_text.casefold()
    return FileType.photo if "photo" in words else FileType.illustration


async def readiness(query: ReadinessQuery, uow: UnitOfWork) -> Readiness:
    """Whether `query.image_id` could be published as it is: the file rules after the
    enlargement, and the content rules on its prompt and title (keywords and category are
    chosen later, per publication)."""
    async with uow:
        image = await uow.images.get(query.owner_id, query.image_id)
    if image is None:
        raise NotFound(
            f"There is no stored image {query.image_id}; an image is publishable once the "
            "images service has stored it."
        )
    enlarge = query.enlarge or 1
    metadata = default_metadata(image)
    content = find_names(image.prompt_text, StockFindingField.text_field) + check_title(
        metadata.title
    )
    file_rules = [
        f
        for f in evaluate(image, metadata, enlarge, None)
        if f.field is StockFindingField.file_field
    ]
    findings = content + file_rules
    return Readiness(
        image_id=image.id,
        agency=query.agency,
        ready=not findings,
        megapixels=round(megapixels(image.width, image.height, enlarge), 2),
        suggested_file_type=suggested_file_type(image),
        findings=[finding_view(f) for f in findings],
    )
