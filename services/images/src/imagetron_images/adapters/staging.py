"""Downloads that may come from our own bucket: `staged://{key}` (a synchronous provider's
results, see adapters/openai_images.py) is read from S3; any other URL goes to the
SSRF-guarded downloader, untouched."""

from __future__ import annotations

from typing import Protocol

import urllib3
from minio.error import MinioException, S3Error

from imagetron_images.app.ports import DownloadFailed, DownloadRefused, ImageDownloader
from imagetron_images.domain.providers import STAGED_SCHEME

STAGING_ROOT = "staging/"


class StagedFiles(Protocol):
    """Our bucket (S3ImageStore): raises minio's errors."""

    async def get(self, key: str) -> bytes: ...


class StagedOrRemoteDownloader:
    """The ImageDownloader port over `store` (staged keys only) and `remote`."""

    def __init__(self, store: StagedFiles, remote: ImageDownloader) -> None:
        self._store = store
        self._remote = remote

    async def download(self, url: str) -> bytes:
        if not url.startswith(STAGED_SCHEME):
            return await self._remote.download(url)
        key = url.removeprefix(STAGED_SCHEME)
        if not key.startswith(STAGING_ROOT) or ".." in key.split("/"):
            raise DownloadRefused(f"Not a staged image: {url}")
        try:
            return await self._store.get(key)
        except S3Error as exc:
            if exc.code in ("NoSuchKey", "NoSuchBucket"):
                raise DownloadRefused(f"The staged image {key} is gone.") from exc
            raise DownloadFailed(f"Reading the staged image {key} failed: {exc}") from exc
        except (MinioException, urllib3.exceptions.HTTPError, OSError) as exc:
            raise DownloadFailed(f"Reading the staged image {key} failed: {exc}") from exc
