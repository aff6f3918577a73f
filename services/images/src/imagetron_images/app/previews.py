"""A task's in-progress preview, served from our own storage.

Providers show blurry previews while they render, at URLs of their own. A page must not
load third-party URLs, so the latest preview is fetched once (through the same guarded
downloader as every image), shrunk, and kept under the owner's prefix next to the task's
images; every later request for it is a lookup.
"""

from __future__ import annotations

import hashlib

from imagetron_contracts.models.images import ImageContentLink, TaskQuery
from imagetron_images.app.images import THUMBNAIL_TYPE, download_for_task
from imagetron_images.app.ports import (
    ImageDownloader,
    ImageStore,
    PermanentError,
    Thumbnailer,
    TransientError,
    UnitOfWork,
)
from imagetron_platform.errors import NotFound, ServiceUnavailable


async def task_preview_url(
    query: TaskQuery,
    uow: UnitOfWork,
    downloader: ImageDownloader,
    thumbnailer: Thumbnailer,
    store: ImageStore,
) -> ImageContentLink:
    async with uow:
        task = await uow.tasks.get(query.owner_id, query.task_id)
    if task is None:
        raise NotFound(f"There is no task {query.task_id}.")
    if task.preview_url is None:
        raise NotFound(f"Task {task.id} has no preview (yet).")
    digest = hashlib.sha256(task.preview_url.encode()).hexdigest()[:32]
    key = f"{task.owner_id}/{task.id}/preview-{digest}.webp"
    if not await store.exists(key):
        try:
            data = await download_for_task(
                downloader,
                task.preview_url,
                task.owner_id,
                task.id,
                what=f"The preview of task {task.id}",
            )
            await store.put(key, await thumbnailer.thumbnail(data), THUMBNAIL_TYPE)
        except TransientError as exc:
            raise ServiceUnavailable(
                f"The provider's preview of task {task.id} cannot be fetched now: {exc}"
            ) from exc
        except PermanentError as exc:
            raise NotFound(f"The provider's preview of task {task.id} is unusable: {exc}") from exc
    return ImageContentLink(
        url=store.content_url(key), content_type=THUMBNAIL_TYPE, etag=f'"preview-{digest}"'
    )
