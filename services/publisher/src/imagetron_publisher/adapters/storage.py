"""The bucket through the `minio` SDK: the images service's originals (read only) and our
prepared files under `<owner>/publications/`. The SDK is synchronous: calls run in threads."""

from __future__ import annotations

import asyncio
import io

import urllib3
from minio import Minio
from minio.error import MinioException, S3Error

from imagetron_publisher.app.ports import ObjectMissing, StorageUnavailable, UnusableOriginal

_CHUNK = 1024 * 1024


class S3FileStore:
    """The FileStore port."""

    def __init__(self, client: Minio, *, bucket: str) -> None:
        self._client = client
        self._bucket = bucket

    async def ping(self) -> None:
        if not await asyncio.to_thread(self._client.bucket_exists, self._bucket):
            raise RuntimeError(f"bucket {self._bucket!r} does not exist")

    async def get(self, key: str, *, max_bytes: int) -> bytes:
        """The object's bytes; more than `max_bytes` is refused before it is all read."""

        def read() -> bytes:
            response = self._client.get_object(self._bucket, key)
            try:
                declared = int(response.headers.get("content-length") or 0)
                if declared > max_bytes:
                    raise UnusableOriginal(f"{key} has {declared} bytes; the limit is {max_bytes}.")
                out = io.BytesIO()
                for chunk in response.stream(_CHUNK):
                    out.write(chunk)
                    if out.tell() > max_bytes:
                        raise UnusableOriginal(f"{key} is larger than {max_bytes} bytes.")
                return out.getvalue()
            finally:
                response.close()
                response.release_conn()

        try:
            return await asyncio.to_thread(read)
        except S3Error as exc:
            if exc.code in ("NoSuchKey", "NoSuchObject"):
                raise ObjectMissing(key) from exc
            raise StorageUnavailable(f"Reading {key} failed: {exc}") from exc
        except (MinioException, urllib3.exceptions.HTTPError, OSError) as exc:
            raise StorageUnavailable(f"Reading {key} failed: {exc}") from exc

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
