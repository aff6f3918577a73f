"""The images service's settings: one class, read from `IMAGETRON_*` environment variables."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field, SecretStr, model_validator

from imagetron_platform.settings import DatabaseSettings

DEFAULT_S3_ENDPOINT = "http://127.0.0.1:8333"
MIB = 1024 * 1024


class ImagesSettings(DatabaseSettings):
    http_port: int = Field(default=8082, ge=0, le=65535)

    # The provider new tasks are sent to; callbacks name their own provider.
    provider: Literal["goapi"] = "goapi"
    goapi_base_url: str = "http://127.0.0.1:8090"
    goapi_api_key: SecretStr = SecretStr("sandbox-goapi-key")
    goapi_timeout_seconds: float = Field(default=30.0, gt=0)

    # Callbacks reach us through the gateway, which verifies both the shared secret and
    # the per-task token (made with `webhook_token_key`, the gateway's setting of that name).
    webhook_public_base_url: str = "http://127.0.0.1:8080"
    webhook_secret: SecretStr = SecretStr("sandbox-webhook-secret")
    webhook_token_key: SecretStr = SecretStr("change-me-webhook-token-key")

    s3_endpoint: str = DEFAULT_S3_ENDPOINT
    # Where browsers reach the same S3 server; presigned URLs are signed for this host.
    s3_public_endpoint: str = DEFAULT_S3_ENDPOINT
    s3_access_key: str = "imagetron"
    s3_secret_key: SecretStr = SecretStr("imagetron-secret")
    s3_bucket: str = "imagetron"
    s3_region: str = "us-east-1"
    content_url_ttl_seconds: int = Field(default=900, ge=1, le=7 * 24 * 3600)

    # `host:port` pairs exempt from the download guard (the local sandbox on 127.0.0.1).
    download_allow_hosts: list[str] = Field(default_factory=list)
    download_max_bytes: int = Field(default=50 * MIB, ge=1)
    download_timeout_seconds: float = Field(default=60.0, gt=0)
    max_pixels: int = Field(default=64_000_000, ge=1)

    # Deliveries of one job before it is given up (the task or image is then marked failed).
    submit_max_deliveries: int = Field(default=10, ge=1, le=100)
    persist_max_deliveries: int = Field(default=10, ge=1, le=100)
    persist_concurrency: int = Field(default=4, ge=1, le=64)

    @model_validator(mode="before")
    @classmethod
    def _public_endpoint_defaults_to_endpoint(cls, data: Any) -> Any:
        if isinstance(data, dict) and not data.get("s3_public_endpoint"):
            return {**data, "s3_public_endpoint": data.get("s3_endpoint", DEFAULT_S3_ENDPOINT)}
        return data
