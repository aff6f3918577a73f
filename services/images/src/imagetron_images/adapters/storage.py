"""Image bytes in an S3 bucket, through the `minio` SDK (any S3 server works).

The SDK is synchronous: every network call runs in a worker thread.
"""

from __future__ import annotations

import asyncio
import io
from datetime import timedelta

import urllib3
from minio import Minio
from minio.error import MinioException, S3Error

from imagetron_images.app.ports import StorageUnavailable


class S3ImageStore:
    """The ImageStore port. `public_client` signs URLs for the endpoint browsers reach."""

    def __init__(
        self, client: Minio, public_client: Minio, *, bucket: str, url_ttl: timedelta
    ) -> None:
        self._client = client
        self._public_client = public_client
        self._bucket = bucket
        self._url_ttl = url_ttl

    async def ensure_bucket(self) -> None:
        """Idempotent; safe when several replicas start at once."""

        def ensure() -> None:
            if not self._client.bucket_exists(self._bucket):
                try:
                    self._client.make_bucket(self._bucket)
                except MinioException as exc:
                    # Another replica created it between our check and our call.
                    if getattr(exc, "code", None) not in (
                        "BucketAlreadyOwnedByYou",
                        "BucketAlreadyExists",
                    ):
                        raise

        await asyncio.to_thread(ensure)

    async def ping(self) -> None:
        if not await asyncio.to_thread(self._client.bucket_exists, self._bucket):
            raise RuntimeError(f"bucket {self._bucket!r} does not exist")

    async def put(self, key: str, data: bytes, content_type: str) -> None:
        try:
            await asyncio.to_thread(
                self._client.put_object,
                self._bucket,
                key,
                io.BytesIO(data),
                len(data),
                content_type=content_type,
            )
        except (MinioException, urllib3.exceptions.HTTPError, OSError) as exc:
            raise StorageUnavailable(f"Storing {key} failed: {exc}") from exc

    async def get(self, key: str) -> bytes:
        def read() -> bytes:
            response = self._client.get_object(self._bucket, key)
            try:
                return bytes(response.read())
            finally:
                response.close()
                response.release_conn()

        try:
            return await asyncio.to_thread(read)
        except (MinioException, urllib3.exceptions.HTTPError, OSError) as exc:
            raise StorageUnavailable(f"Reading {key} failed: {exc}") from exc

    async def exists(self, key: str) -> bool:
        try:
            await asyncio.to_thread(self._client.stat_object, self._bucket, key)
        except S3Error as exc:
            if exc.code in ("NoSuchKey", "NoSuchObject", "ResourceNotFound"):
                return False
            raise StorageUnavailable(f"Looking up {key} failed: {exc}") from exc
        except (MinioException, urllib3.exceptions.HTTPError, OSError) as exc:
            raise StorageUnavailable(f"Looking up {key} failed: {exc}") from exc
        return True

    def content_url(self, key: str) -> str:
        return str(
            self._public_client.presigned_get_object(self._bucket, key, expires=self._url_ttl)
        )
