"""Images: read, list, hand out their bytes, and persist each one on its own."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from urllib.parse import urlsplit
from uuid import UUID

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
from imagetron_images.app.messages import emit_image_change, enqueue_persistence
from imagetron_images.app.ports import (
    DownloadFailed,
    DownloadRefused,
    DownloadSlots,
    ImageDownloader,
    ImageInspector,
    ImagePageKey,
    ImageProvider,
    ImageStore,
    PermanentError,
    SourceGone,
    Thumbnailer,
    TransientError,
    UnitOfWork,
)
from imagetron_images.app.views import image_view
from imagetron_images.domain import Image, ImageChange, ImageFile
from imagetron_images.domain.providers import STAGED_SCHEME, staging_prefix
from imagetron_platform.clock import utcnow
from imagetron_platform.errors import Conflict, NotFound
from imagetron_platform.jobs import Delivery, RetryLater
from imagetron_platform.pagination import Cursors, page_size

log = logging.getLogger(__name__)

PERSIST_CONSUMER = "images-persist"
IMAGE_CURSORS = Cursors(ImagePageKey)
THUMBNAIL_TYPE = "image/webp"


async def get_image(query: ImageQuery, uow: UnitOfWork) -> ImageModel:
    return image_view(await _owned_image(query, uow))


async def list_images(query: ListImagesQuery, uow: UnitOfWork) -> ImagePage:
    limit = page_size(query.limit)
    async with uow:
        rows = await uow.images.list(
            query.owner_id, task_id=query.task_id, prompt_id=query.prompt_id,
            kind=query.kind, is_persisted=query.is_persisted,
            after=IMAGE_CURSORS.after(query.cursor), limit=limit + 1,
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
        url=store.content_url(image.storage_key),
        content_type=image.content_type,
        etag=f'"{image.sha256}"' if image.sha256 else None,
    )


async def image_thumbnail_url(
    query: ImageQuery, uow: UnitOfWork, store: ImageStore, thumbnailer: Thumbnailer
) -> ImageContentLink:
    """The thumbnail, made now from the stored image if it has none yet (images stored
    before thumbnails existed, or whose thumbnail could not be made at the time)."""
    image = await _owned_image(query, uow)
    if not image.is_persisted or image.storage_key is None:
        raise Conflict(f"Image {image.id} is not stored yet.")
    key = image.thumbnail_key
    if key is None:
        key = image.thumbnail_key_for()
        await store.put(key, await thumbnailer.thumbnail(await store.get(image.storage_key)),
                        THUMBNAIL_TYPE)  # fmt: skip
        async with uow:
            locked = await uow.images.get_for_update(query.owner_id, query.image_id)
            if locked is not None and locked.thumbnail_key is None:
                locked.record_thumbnail(key, utcnow())
                await uow.images.update(locked)
                await uow.commit()
    # The thumbnail follows from the stored bytes, which never change.
    return ImageContentLink(
        url=store.content_url(key), content_type=THUMBNAIL_TYPE, etag=f'"{image.sha256}-t"'
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
    providers: Mapping[str, ImageProvider],
    slots: DownloadSlots,
) -> None:
    """Download, validate and store one image and its thumbnail, then record the outcome
    and its event.

    The slow part runs outside any transaction, holding one of the `slots` shared fairly
    between owners and remote hosts (one user's many or slow images, or one slow server, do
    not hold up everyone else's). Storing is idempotent (the key is the image's), so a
    redelivery after a crash just stores the same bytes again. A staged image (a synchronous
    provider's result in our bucket) is deleted once its persisted state is committed, never
    before: a crash in between leaves the job unacked, and its redelivery, finding the image
    stored, deletes the staged copy then (a failed deletion is retried the same way). A URL that
    answers 404 or 410 may have expired: the task is read again from its provider, and a
    fresh URL for the image is tried at once; without one, the attempt counts as a
    transient failure (retried with growing delays, and retryable by hand after the last).
    """
    async with uow:
        image = await uow.images.get(job.owner_id, job.image_id)
    if image is None:
        log.warning("persist job for unknown image %s dropped", job.image_id)
        return
    if image.is_persisted:
        log.info("image %s is already stored", image.id)
        await _discard_staged(image, store, delivery)
        return

    stored: tuple[ImageFile, str, str | None] | None = None
    error = ""
    try:
        async with slots.hold(image.owner_id, source_host(image.source_url)):
            try:
                stored = await _store(image, downloader, inspector, store)
            except SourceGone as gone:
                relocated = await _relocate(image, uow, providers)
                if relocated is None:
                    raise DownloadFailed(f"{gone} Its provider has no other URL for it.") from gone
                image = relocated
                stored = await _store(image, downloader, inspector, store)
    except SourceGone as exc:
        if not delivery.is_last:
            await _record_retryable_failure(job, uow, str(exc))
            raise RetryLater(str(exc)) from exc
        error = f"Gave up after {delivery.attempt} attempts: {exc}"
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
            file, key, thumbnail_key = stored
            change = image.mark_persisted(file, key, utcnow(), thumbnail_key=thumbnail_key)
        await uow.images.update(image)
        await emit_image_change(uow, change, await uow.tasks.get(image.owner_id, image.task_id))
        await uow.commit()
    if image.is_persisted:
        await _discard_staged(image, store, delivery)


async def _discard_staged(image: Image, store: ImageStore, delivery: Delivery) -> None:
    """Delete the staged copy of a persisted image (nothing for a remote source)."""
    prefix = STAGED_SCHEME + staging_prefix(image.owner_id, image.task_id)
    if not image.source_url.startswith(prefix):
        return
    key = image.source_url.removeprefix(STAGED_SCHEME)
    try:
        await store.remove(key)
    except TransientError as exc:
        if not delivery.is_last:
            raise RetryLater(
                f"Image {image.id} is stored; deleting its staged copy failed: {exc}"
            ) from exc
        log.warning("image %s is stored; its staged copy %s stays: %s", image.id, key, exc)


async def _store(
    image: Image,
    downloader: ImageDownloader,
    inspector: ImageInspector,
    store: ImageStore,
) -> tuple[ImageFile, str, str | None]:
    data = await download_for_task(
        downloader, image.source_url, image.owner_id, image.task_id, what=f"Image {image.id}"
    )
    # One decode checks the image and makes its thumbnail (each stored image was decoded
    # twice, once for each: about a fifth of the images service's CPU per image).
    inspected = await inspector.inspect(data)
    file = inspected.file
    key = image.storage_key_for(file.extension)
    await store.put(key, data, file.content_type)
    if inspected.thumbnail is None:
        # The image itself passed inspection: keep it; the thumbnail is made on demand.
        log.warning("no thumbnail for image %s: %s", image.id, inspected.thumbnail_problem)
        return file, key, None
    thumbnail_key = image.thumbnail_key_for()
    await store.put(thumbnail_key, inspected.thumbnail, THUMBNAIL_TYPE)
    return file, key, thumbnail_key


def source_host(url: str) -> str | None:
    """The remote `host:port` an image comes from; None for our own staging bucket."""
    if url.startswith(STAGED_SCHEME):
        return None
    parts = urlsplit(url)
    try:
        port = parts.port or {"https": 443}.get(parts.scheme, 80)
    except ValueError:  # not a port: the download will say so
        return parts.netloc.lower()
    return f"{(parts.hostname or '').lower()}:{port}"


async def download_for_task(
    downloader: ImageDownloader, url: str, owner_id: UUID, task_id: UUID, *, what: str
) -> bytes:
    """Download a file a provider named for a task. Staged results in our own bucket are
    read only from that task's staging prefix, never from another owner's objects."""
    if url.startswith(STAGED_SCHEME) and not url.startswith(
        STAGED_SCHEME + staging_prefix(owner_id, task_id)
    ):
        raise DownloadRefused(f"{what} names another task's staged file.")
    return await downloader.download(url)


async def _relocate(
    image: Image, uow: UnitOfWork, providers: Mapping[str, ImageProvider]
) -> Image | None:
    """Ask the image's provider where the image is now; record and return the image with a
    fresh URL, or None when there is none (the provider forgot the task, or has the same
    URL)."""
    async with uow:
        task = await uow.tasks.get(image.owner_id, image.task_id)
    provider = providers.get(task.provider) if task is not None else None
    if task is None or provider is None or task.provider_task_id is None:
        return None
    try:
        update = await provider.fetch(task.provider_task_id)
    except (TransientError, PermanentError) as exc:
        log.info("image %s: could not ask %s for a fresh URL: %s", image.id, provider.name, exc)
        return None
    fresh = task.fresh_source_url(image.kind, image.index, update)
    if fresh is None or fresh == image.source_url:
        return None
    async with uow:
        current = await uow.images.get_for_update(image.owner_id, image.id)
        if current is None or current.is_persisted:
            return None
        current.relocate(fresh, utcnow())
        await uow.images.update(current)
        await uow.commit()
    log.info("image %s: its provider moved it; trying the fresh URL", image.id)
    return current


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
