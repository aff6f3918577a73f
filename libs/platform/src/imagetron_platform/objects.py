"""Object storage through the `minio` SDK (any S3 server works): the one way a service
builds its client, and the one bucket adapter its ports are implemented with."""

from __future__ import annotations

import asyncio
import io
from urllib.parse import urlsplit

import urllib3
from minio import Minio
from minio.error import MinioException, S3Error


def minio_client(
    endpoint: str, *, access_key: str, secret_key: str, region: str, timeout_seconds: float = 30.0
) -> Minio:
    """`endpoint` is a URL (`http://127.0.0.1:8333`). Setting the region spares a
    bucket-location call, which some S3 servers do not implement, and lets presigning work
    without any network call. Connects and reads are bounded; 502/503/504 are retried twice."""
    parts = urlsplit(endpoint)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise ValueError(f"S3 endpoint must be an http(s) URL, not {endpoint!r}")
    http = urllib3.PoolManager(
        timeout=urllib3.Timeout(connect=5.0, read=timeout_seconds),
        retries=urllib3.Retry(total=2, backoff_factor=0.2, status_forcelist=(502, 503, 504)),
        maxsize=16,
    )
    return Minio(
        parts.netloc,
        access_key=access_key,
        secret_key=secret_key,
        secure=parts.scheme == "https",
        region=region,
        http_client=http,
    )


_CHUNK = 1024 * 1024
_MISSING_CODES = ("NoSuchKey", "NoSuchObject", "ResourceNotFound")
_TRANSPORT_ERRORS = (MinioException, urllib3.exceptions.HTTPError, OSError)


class S3Bucket:
    """One bucket through the synchronous `minio` SDK, every call in a worker thread, each
    failure raised as the owning service's own port exception: `unavailable` (unreachable,
    refused: transient), `missing` (no object under the key), `too_large` (more bytes than
    the caller takes; refused before they are all read)."""

    def __init__(
        self,
        client: Minio,
        *,
        bucket: str,
        unavailable: type[Exception],
        missing: type[Exception],
        too_large: type[Exception],
    ) -> None:
        self._client = client
        self._bucket = bucket
        self._unavailable = unavailable
        self._missing = missing
        self._too_large = too_large

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
        except _TRANSPORT_ERRORS as exc:
            raise self._unavailable(f"Storing {key} failed: {exc}") from exc

    async def get(self, key: str, *, max_bytes: int | None = None) -> bytes:
        """The object's bytes (at most `max_bytes`, checked as they arrive)."""

        def read() -> bytes:
            response = self._client.get_object(self._bucket, key)
            try:
                declared = int(response.headers.get("content-length") or 0)
                if max_bytes is not None and declared > max_bytes:
                    raise self._too_large(f"{key} has {declared} bytes; the limit is {max_bytes}.")
                out = io.BytesIO()
                for chunk in response.stream(_CHUNK):
                    out.write(chunk)
                    if max_bytes is not None and out.tell() > max_bytes:
                        raise self._too_large(f"{key} is larger than {max_bytes} bytes.")
                return out.getvalue()
            finally:
                response.close()
                response.release_conn()

        try:
            return await asyncio.to_thread(read)
        except S3Error as exc:
            if exc.code in _MISSING_CODES:
                raise self._missing(key) from exc
            raise self._unavailable(f"Reading {key} failed: {exc}") from exc
        except _TRANSPORT_ERRORS as exc:
            raise self._unavailable(f"Reading {key} failed: {exc}") from exc

    async def remove(self, key: str) -> None:
        """Delete the object; none under the key is no error (S3's DeleteObject)."""
        try:
            await asyncio.to_thread(self._client.remove_object, self._bucket, key)
        except S3Error as exc:
            if exc.code not in _MISSING_CODES:
                raise self._unavailable(f"Deleting {key} failed: {exc}") from exc
        except _TRANSPORT_ERRORS as exc:
            raise self._unavailable(f"Deleting {key} failed: {exc}") from exc

    async def exists(self, key: str) -> bool:
        try:
            await asyncio.to_thread(self._client.stat_object, self._bucket, key)
        except S3Error as exc:
            if exc.code in _MISSING_CODES:
                return False
            raise self._unavailable(f"Looking up {key} failed: {exc}") from exc
        except _TRANSPORT_ERRORS as exc:
            raise self._unavailable(f"Looking up {key} failed: {exc}") from exc
        return True
