"""Object storage through the `minio` SDK (any S3 server works): the one way a service
builds its client."""

from __future__ import annotations

from urllib.parse import urlsplit

import urllib3
from minio import Minio


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
