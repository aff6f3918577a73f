"""The bucket through the `minio` SDK: the images service's originals (read only) and our
prepared files under `<owner>/publications/`."""

from __future__ import annotations

from minio import Minio

from imagetron_platform.objects import S3Bucket
from imagetron_publisher.app.ports import ObjectMissing, StorageUnavailable, UnusableOriginal


class S3FileStore(S3Bucket):
    """The FileStore port: an original too large to read is unusable (permanent)."""

    def __init__(self, client: Minio, *, bucket: str) -> None:
        super().__init__(
            client,
            bucket=bucket,
            unavailable=StorageUnavailable,
            missing=ObjectMissing,
            too_large=UnusableOriginal,
        )
