"""Images: read, list, hand out their bytes, and persist each one on its own."""

from __future__ import annotations

import logging

from imagetron_contracts.models.images import (
    Image as ImageModel,
)
from imagetron_contracts.models.images import (
    ImageContentLink,
    ImagePage,
    ImageQuery,
    ListImagesQuery,
    PersistImageJob,
)
from imagetron_images.app.jobs import Delivery, RetryLater
from imagetron_images.app.messages import emit_image_change, enqueue_persistence
from imagetron_images.app.ports import (
    DownloadRefused,
    ImageDownloader,
    ImageInspector,
    ImagePageKey,
    ImageStore,
    PermanentError,
    TransientError,
    UnitOfWork,
)
from imagetron_images.app.views import image_view
from imagetron_images.domain import Image, ImageChange, ImageFile
from imagetron_images.domain.providers import STAGED_SCHEME, staging_prefix
from imagetron_platform.clock import utcnow
from imagetron_platform.errors import Conflict, NotFound
from imagetron_platform.pagination import Cursors, page_size

log = logging.getLogger(__name__)

PERSIST_CONSUMER = "images-persist"
IMAGE_CURSORS = Cursors(ImagePageKey)


async def get_image(query: ImageQuery, uow: UnitOfWork) -> ImageModel:
    return image_view(await _owned_image(query, uow))


async def list_images(query: ListImagesQuery, uow: UnitOfWork) -> ImagePage:
    limit = page_size(query.limit)
    async with uow:
        rows = await uow.images.list(
            query.owner_id, task_id=query.task_id, prompt_id=query.prompt_id,
            kind=query.kind, after=IMAGE_CURSORS.after(query.cursor), limit=limit + 1,
        )  # fmt: skip
    page = IMAGE_CURSORS.page(rows, limit, lambda i: ImagePageKey(i.created_at, i.task_id, i.index))
    return ImagePage(items=[image_view(i) for i in page.items], next_cursor=page.next_cursor)


async def image_content_url(
    query: ImageQuery, uow: UnitOfWork, store: ImageStore
) -> ImageContentLink:
    image = await _owned_image(query, uow)
    if not image.is_persisted or image.storage_key is None or image.content_type is None:
        raise Conflict(f"Image {image.id} is not stored yet.")
    return ImageContentLink(
        url=store.content_url(image.storage_key), content_type=image.content_type
    )


async def retry_image(query: ImageQuery, uow: UnitOfWork) -> ImageModel:
    """Queue another attempt to store an image (409 once it is stored). The new job starts
    a fresh series of deliveries, so it gets the whole automatic backoff again."""
    async with uow:
        image = await uow.images.get_for_update(query.owner_id, query.image_id)
        if image is None:
            raise NotFound(f"There is no image {query.image_id}.")
        image.request_retry(utcnow())
        await uow.images.update(image)
        await enqueue_persistence(uow, image)
        await uow.commit()
    return image_view(image)


async def persist_image(
    job: PersistImageJob,
    delivery: Delivery,
    uow: UnitOfWork,
    downloader: ImageDownloader,
    inspector: ImageInspector,
    store: ImageStore,
) -> None:
    """Download, validate and store one image, then record the outcome and its event.

    The slow part runs outside any transaction; storing is idempotent (the key is the
    image's), so a redelivery after a crash just stores the same bytes again.
    """
    async with uow:
        image = await uow.images.get(job.owner_id, job.image_id)
    if image is None:
        log.warning("persist job for unknown image %s dropped", job.image_id)
        return
    if image.is_persisted:
        log.info("image %s is already stored", image.id)
        return

    stored: tuple[ImageFile, str] | None = None
    error = ""
    try:
        stored = await _store(image, downloader, inspector, store)
    except TransientError as exc:
        if not delivery.is_last:
            await _record_retryable_failure(job, uow, str(exc))
            raise RetryLater(str(exc)) from exc
        error = f"Gave up after {delivery.attempt} attempts: {exc}"
    except PermanentError as exc:
        error = str(exc)

    async with uow:
        if not await uow.claim(PERSIST_CONSUMER, delivery.message_id):
            log.info("persist job %s was applied before", delivery.message_id)
            return
        image = await uow.images.get_for_update(job.owner_id, job.image_id)
        if image is None or image.is_persisted:
            return
        change: ImageChange
        if stored is None:
            log.warning("image %s could not be persisted: %s", image.id, error)
            change = image.mark_failed(error, utcnow())
        else:
            change = image.mark_persisted(*stored, utcnow())
        await uow.images.update(image)
        await emit_image_change(uow, change, await uow.tasks.get(image.owner_id, image.task_id))
        await uow.commit()


async def _store(
    image: Image, downloader: ImageDownloader, inspector: ImageInspector, store: ImageStore
) -> tuple[ImageFile, str]:
    if image.source_url.startswith(STAGED_SCHEME) and not image.source_url.startswith(
        STAGED_SCHEME + staging_prefix(image.owner_id, image.task_id)
    ):
        # Our own bucket: only this task's staged results, never another owner's objects.
        raise DownloadRefused(f"Image {image.id} names another task's staged file.")
    data = await downloader.download(image.source_url)
    file = await inspector.inspect(data)
    key = image.storage_key_for(file.extension)
    await store.put(key, data, file.content_type)
    return file, key


async def _record_retryable_failure(job: PersistImageJob, uow: UnitOfWork, error: str) -> None:
    async with uow:
        image = await uow.images.get_for_update(job.owner_id, job.image_id)
        if image is None or image.is_persisted:
            return
        image.record_retryable_failure(error, utcnow())
        await uow.images.update(image)
        await uow.commit()


async def _owned_image(query: ImageQuery, uow: UnitOfWork) -> Image:
    async with uow:
        image = await uow.images.get(query.owner_id, query.image_id)
    if image is None:
        raise NotFound(f"There is no image {query.image_id}.")
    return image
