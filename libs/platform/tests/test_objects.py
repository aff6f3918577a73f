"""The bucket adapter every service's storage port is built on, against the session's real
S3 server: each failure is raised as the owning service's own exception (missing, too
large, unavailable), never as the SDK's."""

from __future__ import annotations

import uuid

import pytest

from imagetron.servers import free_port
from imagetron_platform.objects import S3Bucket, minio_client

pytestmark = pytest.mark.integration


class Unavailable(Exception):
    pass


class Missing(Exception):
    pass


class TooLarge(Exception):
    pass


def bucket_on(endpoint: str, credentials, name: str) -> S3Bucket:
    client = minio_client(
        endpoint,
        access_key=credentials.access_key,
        secret_key=credentials.secret_key,
        region=credentials.region,
        timeout_seconds=5,
    )
    return S3Bucket(
        client, bucket=name, unavailable=Unavailable, missing=Missing, too_large=TooLarge
    )


@pytest.fixture
async def bucket(s3_endpoint, s3_credentials) -> S3Bucket:
    made = bucket_on(s3_endpoint, s3_credentials, f"objects-{uuid.uuid4().hex[:12]}")
    await made.ensure_bucket()
    return made


async def test_an_object_is_stored_read_and_bounded(bucket):
    await bucket.ensure_bucket()  # idempotent
    await bucket.ping()
    await bucket.put("a/one.bin", b"x" * 100, "application/octet-stream")
    assert await bucket.exists("a/one.bin")
    assert await bucket.get("a/one.bin") == b"x" * 100
    assert await bucket.get("a/one.bin", max_bytes=100) == b"x" * 100
    with pytest.raises(TooLarge, match="100 bytes; the limit is 99"):
        await bucket.get("a/one.bin", max_bytes=99)


async def test_a_missing_object_is_the_services_own_missing(bucket):
    assert not await bucket.exists("nothing/here")
    with pytest.raises(Missing):
        await bucket.get("nothing/here")


async def test_a_missing_bucket_fails_readiness(s3_endpoint, s3_credentials):
    absent = bucket_on(s3_endpoint, s3_credentials, f"absent-{uuid.uuid4().hex[:12]}")
    with pytest.raises(RuntimeError, match="does not exist"):
        await absent.ping()


async def test_storage_that_cannot_be_reached_is_unavailable(s3_credentials):
    # Nothing listens on this port: every call is refused, as when the S3 server is down.
    down = bucket_on(f"http://127.0.0.1:{free_port()}", s3_credentials, "anything")
    with pytest.raises(Unavailable, match="Storing k failed"):
        await down.put("k", b"data", "text/plain")
    with pytest.raises(Unavailable, match="Reading k failed"):
        await down.get("k")
    with pytest.raises(Unavailable, match="Looking up k failed"):
        await down.exists("k")


def test_the_endpoint_must_be_an_http_url():
    for endpoint in ("127.0.0.1:8333", "ftp://127.0.0.1", "http://"):
        with pytest.raises(ValueError, match="must be an http"):
            minio_client(endpoint, access_key="a", secret_key="b", region="us-east-1")
