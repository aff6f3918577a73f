"""Runtime configuration of the sandbox (environment prefix ``IMAGETRON_SANDBOX_``)."""

from __future__ import annotations

from pydantic import Field, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict


class SandboxSettings(BaseSettings):
    """Everything the sandbox needs to know; every field can be set from the environment."""

    model_config = SettingsConfigDict(env_prefix="IMAGETRON_SANDBOX_", extra="ignore")

    host: str = "127.0.0.1"
    port: int = Field(default=8090, ge=0, le=65535)
    public_base_url: str | None = Field(
        default=None,
        description="Base of the image URLs handed out; defaults to http://<host>:<port>.",
    )
    log_level: str = "info"

    goapi_api_key: str = "sandbox-goapi-key"
    midjourney_proxy_api_secret: str | None = Field(
        default=None, description="When set, the only `mj-api-secret` accepted; otherwise none."
    )
    openai_api_key: str | None = Field(
        default=None,
        description="When set, only this bearer key is accepted; otherwise any non-empty key.",
    )
    chat_models: tuple[str, ...] = ("gpt-4o-mini", "gpt-4o", "gpt-4.1-mini", "gpt-4.1")

    pending_ms: int = Field(default=300, ge=0, description="Time a task stays pending.")
    progress_steps: tuple[int, ...] = Field(
        default=(0, 30, 70),
        description="task_progress values reported while processing, before completion at 100.",
    )
    progress_interval_ms: int = Field(default=300, ge=0)

    webhook_timeout_s: float = Field(default=5.0, gt=0)
    webhook_max_attempts: int = Field(default=4, ge=1)
    webhook_backoff_ms: int = Field(default=250, ge=0, description="First retry delay; doubles.")

    grid_long_side: int = Field(default=1024, ge=64, le=4096)
    upscale_long_side: int = Field(default=2048, ge=64, le=8192)
    midjourney_version: str = "7"
    image_store_max_mb: int = Field(default=512, ge=1)

    # The stand-in stock agency (SFTP). Port 0 (the default) picks a free one.
    agency_port: int = Field(default=0, ge=0, le=65535)
    agency_password: str = "sandbox"  # noqa: S105 - the stand-in's documented password
    agency_host_key: str | None = Field(
        default=None,
        description="Path of the SFTP host key (OpenSSH format); a new one is made in memory "
        "at each start when unset.",
    )
    agency_root: str | None = Field(
        default=None, description="Where uploads are kept; a temporary folder when unset."
    )
    agency_max_mb: int = Field(default=512, ge=1, description="Space per user.")

    @field_validator("progress_steps")
    @classmethod
    def _steps_in_range(cls, steps: tuple[int, ...]) -> tuple[int, ...]:
        if any(not 0 <= step < 100 for step in steps):
            raise ValueError("progress steps must be within 0..99")
        if list(steps) != sorted(steps):
            raise ValueError("progress steps must be increasing")
        return steps

    @property
    def base_url(self) -> str:
        """Public base URL without a trailing slash."""
        if self.public_base_url:
            return self.public_base_url.rstrip("/")
        return f"http://{self.host}:{self.port}"
