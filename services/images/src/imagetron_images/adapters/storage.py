"""Image bytes in an S3 bucket, through the `minio` SDK (any S3 server works).

The SDK is synchronous: every network call runs in a worker thread.
"""

from __future__ import annotations

from datetime import timedelta

from minio import Minio

from imagetron_images.app.ports import InvalidImage, StorageUnavailable
from imagetron_platform.objects import S3Bucket


class S3ImageStore(S3Bucket):
    """The ImageStore port. `public_client` signs URLs for the endpoint browsers reach.

    An object we stored and cannot find is a storage fault, retried like any other."""

    def __init__(
        self, client: Minio, public_client: Minio, *, bucket: str, url_ttl: timedelta
    ) -> None:
        super().__init__(
            client,
            bucket=bucket,
            unavailable=StorageUnavailable,
            missing=StorageUnavailable,
            too_large=InvalidImage,
        )
        self._public_client = public_client
        self._url_ttl = url_ttl

    def content_url(self, key: str) -> str:
        return str(
            self._public_client.presigned_get_object(self._bucket, key, expires=self._url_ttl)
        )
