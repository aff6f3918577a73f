from __future__ import annotations

from pydantic import Field, SecretStr

from imagetron_platform.settings import ServiceSettings


class NotifierSettings(ServiceSettings):
    http_port: int = Field(default=8083, ge=0, le=65535)
    #: Verifies events tokens; the gateway signs them with the same secret.
    events_token_secret: SecretStr = SecretStr("change-me-events-token-secret")
    #: Connections this process holds at most; beyond it clients get 503 + Retry-After.
    max_connections: int = Field(default=10_000, ge=1)
    retry_after_seconds: int = Field(default=5, ge=1)
    #: Live events queued per connection; a client further behind catches up from the stream.
    client_queue_size: int = Field(default=1_000, ge=1)
    #: A comment line after this long without events, so idle connections stay open.
    heartbeat_seconds: float = Field(default=15.0, gt=0)
    #: Browser reconnection delay sent in the stream's `retry:` field.
    client_retry_ms: int = Field(default=2_000, ge=100)
