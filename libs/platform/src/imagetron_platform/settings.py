"""The settings every service shares; each service subclasses `ServiceSettings` once."""

from __future__ import annotations

import re
from typing import TYPE_CHECKING

from pydantic import Field, SecretStr, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

if TYPE_CHECKING:  # the HTTP edge (FastAPI): not for who only reads settings (provisioning)
    from imagetron_platform.http import MetricsAccess

#: Where the example and default secrets may be used: a laptop (`imagetron up`, compose).
LOCAL_ENVIRONMENTS = frozenset({"local", "compose", "test"})
#: How the deploy files' placeholders and the code's defaults read.
_EXAMPLE = re.compile(r"change-?me|example", re.IGNORECASE)


def example_secrets(settings: BaseSettings) -> list[str]:
    """The settings (as environment variables) whose value is a placeholder: the default in
    the code, or a value marked EXAMPLE / change-me as in the deploy files."""
    found = []
    for name, field in type(settings).model_fields.items():
        value = getattr(settings, name)
        if isinstance(value, SecretStr):
            secret = value.get_secret_value()
            default = field.default
            is_default = isinstance(default, SecretStr) and default.get_secret_value() == secret
            if secret and (is_default or _EXAMPLE.search(secret)):
                found.append(f"IMAGETRON_{name.upper()}")
        elif name.endswith("_url") and isinstance(value, str) and _EXAMPLE.search(value):
            found.append(f"IMAGETRON_{name.upper()}")
    return found


class NatsSettings(BaseSettings):
    """How a process reaches NATS: every service's, and the provisioning step's.

    Each service has its own NATS user (`imagetron_platform.nats_access`); without a user the
    connection is anonymous, which only a NATS server without users accepts (tests)."""

    model_config = SettingsConfigDict(
        env_prefix="IMAGETRON_", env_file=".env", extra="ignore", frozen=True
    )

    #: `nats://` on one machine; `tls://` where NATS is across a network.
    nats_url: str = "nats://127.0.0.1:4222"
    nats_user: str | None = None
    nats_password: SecretStr | None = None
    #: PEM certificates the NATS server's certificate is checked against (with a `tls://`
    #: URL); the system's trust store when unset.
    nats_ca_file: str | None = None


class ServiceSettings(NatsSettings):
    """Read from `IMAGETRON_*` environment variables (and a `.env` file when present)."""

    environment: str = "local"
    log_level: str = "INFO"
    log_json: bool = True
    sentry_dsn: SecretStr | None = None
    sentry_traces_sample_rate: float = Field(default=0.0, ge=0.0, le=1.0)

    rpc_timeout_seconds: float = Field(default=5.0, gt=0)

    http_host: str = "127.0.0.1"
    http_port: int = Field(default=8080, ge=0, le=65535)
    shutdown_grace_seconds: float = Field(default=10.0, ge=0)
    #: When set, `/metrics` answers only `Authorization: Bearer <token>` (Prometheus's
    #: `authorization` setting). Unset outside a local environment, `/metrics` is not served
    #: on a public listener (the gateway's): see `metrics_public`.
    metrics_token: SecretStr | None = None

    @model_validator(mode="after")
    def _no_example_secrets_outside_a_laptop(self) -> ServiceSettings:
        if self.environment not in LOCAL_ENVIRONMENTS:
            placeholders = example_secrets(self)
            if placeholders:
                raise ValueError(
                    f"IMAGETRON_ENVIRONMENT={self.environment} but {', '.join(placeholders)} "
                    "still hold example or default values: set real secrets (e.g. `openssl "
                    "rand -base64 32`), or IMAGETRON_ENVIRONMENT=local on a laptop."
                )
        return self

    @property
    def is_local(self) -> bool:
        return self.environment in LOCAL_ENVIRONMENTS

    def metrics_access(self, *, public: bool) -> MetricsAccess:
        """A service whose listener is public (gateway, notifier) serves `/metrics` outside
        a laptop only with `metrics_token`; any service checks the token when it is set."""
        from imagetron_platform.http import MetricsAccess

        token = self.metrics_token.get_secret_value() if self.metrics_token else None
        return MetricsAccess(token=token, served=not public or self.is_local or token is not None)


class DatabaseSettings(ServiceSettings):
    """Settings of a service that owns a PostgreSQL schema."""

    database_url: str = "postgresql+asyncpg://imagetron@127.0.0.1:5432/imagetron"
    #: Connections kept open. Beyond it SQLAlchemy opens overflow connections and closes
    #: them after each use: a new asyncpg connection (TLS probe, authentication, type
    #: introspection, statements prepared again) costs more CPU than the transaction it
    #: serves (measured: a tenth of a provider callback's), so size it to what the
    #: service's consumers and loops run at once.
    database_pool_size: int = Field(default=10, ge=1)
    database_connect_timeout_seconds: float = Field(default=10.0, gt=0)
    database_statement_timeout_seconds: float = Field(default=30.0, gt=0)
    database_pool_recycle_seconds: int = Field(default=1800, ge=1)
    outbox_poll_seconds: float = Field(default=1.0, gt=0)
