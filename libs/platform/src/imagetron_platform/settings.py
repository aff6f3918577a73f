"""The settings every service shares; each service subclasses `ServiceSettings` once."""

from __future__ import annotations

from pydantic import Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict


class ServiceSettings(BaseSettings):
    """Read from `IMAGETRON_*` environment variables (and a `.env` file when present)."""

    model_config = SettingsConfigDict(
        env_prefix="IMAGETRON_", env_file=".env", extra="ignore", frozen=True
    )

    environment: str = "local"
    log_level: str = "INFO"
    log_json: bool = True
    sentry_dsn: SecretStr | None = None
    sentry_traces_sample_rate: float = Field(default=0.0, ge=0.0, le=1.0)

    nats_url: str = "nats://127.0.0.1:4222"
    rpc_timeout_seconds: float = Field(default=5.0, gt=0)

    http_host: str = "127.0.0.1"
    http_port: int = Field(default=8080, ge=0, le=65535)
    shutdown_grace_seconds: float = Field(default=10.0, ge=0)


class DatabaseSettings(ServiceSettings):
    """Settings of a service that owns a PostgreSQL schema."""

    database_url: str = "postgresql+asyncpg://imagetron@127.0.0.1:5432/imagetron"
    database_pool_size: int = Field(default=5, ge=1)
    database_connect_timeout_seconds: float = Field(default=10.0, gt=0)
    database_statement_timeout_seconds: float = Field(default=30.0, gt=0)
    database_pool_recycle_seconds: int = Field(default=1800, ge=1)
    outbox_poll_seconds: float = Field(default=1.0, gt=0)
