"""The images service's settings: one class, read from `IMAGETRON_*` environment variables."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field, SecretStr, field_validator, model_validator

from imagetron_contracts.models.images import TaskCommand
from imagetron_platform.settings import DatabaseSettings

DEFAULT_S3_ENDPOINT = "http://127.0.0.1:8333"
MIB = 1024 * 1024


class ImagesSettings(DatabaseSettings):
    http_port: int = Field(default=8082, ge=0, le=65535)

    # The provider new tasks are sent to; callbacks name their own provider.
    provider: Literal["goapi", "midjourney_proxy", "replicate", "openai"] = "goapi"
    goapi_base_url: str = "http://127.0.0.1:8090"
    goapi_api_key: SecretStr = SecretStr("sandbox-goapi-key")
    # The timeout of every call to a provider (the setting predates the other providers).
    goapi_timeout_seconds: float = Field(default=30.0, gt=0)
    # midjourney-proxy (novicezk/trueai-org); its `mj-api-secret`, if it requires one; its
    # follow-up API: `change` (the original), `action` (trueai-org v10+: buttons' custom
    # ids, cancel) or `auto` (read from the origin task: buttons mean `action`).
    midjourney_proxy_base_url: str = "http://127.0.0.1:8080"
    midjourney_proxy_api_secret: SecretStr | None = None
    midjourney_proxy_api: Literal["auto", "change", "action"] = "auto"
    # Replicate: an official model (`owner/name`), or a `version` id instead; extra model
    # input (e.g. {"num_outputs": 4}) merged under prompt and aspect_ratio.
    replicate_base_url: str = "https://api.replicate.com"
    replicate_api_token: SecretStr = SecretStr("")
    replicate_model: str = Field(default="black-forest-labs/flux-schnell", pattern=r"^[^/]+/[^/]+$")
    replicate_version: str | None = None
    replicate_input: dict[str, Any] = Field(default_factory=lambda: {"num_outputs": 4})
    # OpenAI Images (synchronous): model names change often, hence a setting; images per
    # task (versions 1-4); the generation call's own timeout (it answers when done).
    openai_base_url: str = "https://api.openai.com"
    openai_api_key: SecretStr = SecretStr("")
    openai_image_model: str = Field(default="gpt-image-1", min_length=1)
    openai_image_count: int = Field(default=4, ge=1, le=4)
    openai_timeout_seconds: float = Field(default=120.0, gt=0)

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
    # A server that sends less than this on average, once `download_grace_seconds` have
    # passed, is cut off (a retryable failure): a trickle cannot hold a slot for long.
    download_min_bytes_per_second: int = Field(default=16 * 1024, ge=0)
    download_grace_seconds: float = Field(default=10.0, ge=0)
    # Of the `persist_concurrency` slots, one owner holds at most `download_per_owner` and
    # one remote host (host:port) at most `download_per_host`; a job waits at most
    # `download_slot_wait_seconds` for one (then it is retried later).
    download_per_owner: int = Field(default=2, ge=1)
    download_per_host: int = Field(default=3, ge=1)
    download_slot_wait_seconds: float = Field(default=300.0, gt=0)
    max_pixels: int = Field(default=64_000_000, ge=1)
    #: Pixels decoded at once across the process (every image's width x height while it is
    #: checked); decodes beyond it wait. Keeps memory bounded when large images arrive
    #: together (about 4 bytes a pixel while decoding).
    decode_pixel_budget: int = Field(default=128_000_000, ge=1)
    #: Processes that check and shrink images (Pillow), started when first needed; 0 (the
    #: default) runs that work in threads of the service, sharing its interpreter lock.
    image_workers: int = Field(default=0, ge=0, le=64)

    # Deliveries of one job before it is given up (the task or image is then marked failed).
    submit_max_deliveries: int = Field(default=10, ge=1, le=100)
    persist_max_deliveries: int = Field(default=10, ge=1, le=100)
    # Images downloaded, checked and stored at once (the download slots above).
    persist_concurrency: int = Field(default=4, ge=1, le=64)
    # Persist jobs taken from the queue at once, most of them waiting for a slot: enough
    # that other owners' jobs are taken while one owner's wait (each waits cheaply).
    persist_in_flight: int = Field(default=32, ge=1, le=256)
    # Provider callbacks applied at once. Each is one transaction on its task's row (locked
    # for update, so two callbacks of one task still apply one after the other, and the
    # domain drops what arrives late); a completion no longer waits behind a queue of other
    # tasks' progress reports.
    callback_concurrency: int = Field(default=8, ge=1, le=64)
    # Callbacks, persistence jobs, the outbox relay and the loops each hold a connection.
    database_pool_size: int = Field(default=16, ge=1)
    # How long JetStream waits for a sign of life from a job's consumer (its ack, or an
    # in-progress report, sent every third of it) before it redelivers the job: the work of
    # a process that died resumes after this long.
    ack_wait_seconds: float = Field(default=10.0, ge=1)

    # Tasks each provider account may have sent and unfinished at once; the rest wait in
    # order, dispatched as slots free up (checked every `dispatch_interval_seconds`).
    max_in_flight_per_provider: int = Field(default=10, ge=1, le=10_000)
    dispatch_interval_seconds: float = Field(default=1.0, gt=0)
    # How often the domain metrics (tasks by provider and state, the dispatch queue, images
    # by state) are counted from the database.
    census_interval_seconds: float = Field(default=15.0, gt=0)

    # Every task ends: from the moment it takes a slot, a task has `task_deadline_seconds`
    # to finish (`task_deadlines` overrides it per "<provider>.<command>" or "<command>"),
    # after which it fails, or is sent again if its owner opted in.
    task_deadline_seconds: float = Field(default=1800.0, gt=0)
    task_deadlines: dict[str, float] = Field(default_factory=lambda: {"upscale": 900.0})

    # Lost webhooks: a submitted or processing task quiet for longer than its command
    # usually takes at its provider (learned: the 90th percentile of the last day's
    # durations), and at least `reconcile_after_seconds`, is fetched from its provider at
    # once; while nothing changes it is asked again after `reconcile_retry_seconds`,
    # doubling up to `reconcile_max_delay_seconds`. Checked every
    # `reconcile_interval_seconds`, at most `reconcile_batch_size` tasks at a time.
    reconcile_after_seconds: float = Field(default=30.0, gt=0)
    reconcile_retry_seconds: float = Field(default=15.0, gt=0)
    reconcile_max_delay_seconds: float = Field(default=600.0, gt=0)
    reconcile_interval_seconds: float = Field(default=5.0, gt=0)
    reconcile_batch_size: int = Field(default=50, ge=1, le=1000)

    @field_validator("task_deadlines")
    @classmethod
    def _deadline_keys_name_commands(cls, value: dict[str, float]) -> dict[str, float]:
        commands = {c.value for c in TaskCommand}
        for key, seconds in value.items():
            if key.rpartition(".")[2] not in commands or seconds <= 0:
                raise ValueError(
                    f"task_deadlines: {key!r}: {seconds} must be '<command>' or "
                    f"'<provider>.<command>' (commands: {', '.join(sorted(commands))}) "
                    "with a positive number of seconds"
                )
        return value

    @model_validator(mode="after")
    def _chosen_provider_has_credentials(self) -> ImagesSettings:
        if self.provider == "replicate" and not self.replicate_api_token.get_secret_value():
            raise ValueError("IMAGETRON_REPLICATE_API_TOKEN is required with PROVIDER=replicate")
        if self.provider == "openai" and not self.openai_api_key.get_secret_value():
            raise ValueError("IMAGETRON_OPENAI_API_KEY is required with PROVIDER=openai")
        return self

    @model_validator(mode="before")
    @classmethod
    def _public_endpoint_defaults_to_endpoint(cls, data: Any) -> Any:
        if isinstance(data, dict) and not data.get("s3_public_endpoint"):
            return {**data, "s3_public_endpoint": data.get("s3_endpoint", DEFAULT_S3_ENDPOINT)}
        return data
