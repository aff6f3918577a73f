from __future__ import annotations

from pydantic import Field, SecretStr, field_validator
from standardwebhooks import Webhook

from imagetron_platform.settings import DatabaseSettings


class GatewaySettings(DatabaseSettings):
    http_port: int = Field(default=8080, ge=0, le=65535)

    #: Creates an admin with this API key if no user has it (`imagetron up` always sets it:
    #: yours, or one it generated and keeps in its data folder).
    bootstrap_api_key: SecretStr | None = None
    bootstrap_admin_name: str = "admin"

    #: Shared with the provider (echoed in `x-webhook-secret`) and with the images service.
    webhook_secret: SecretStr = SecretStr("sandbox-webhook-secret")
    #: Key of the per-task callback token; the images service has the same setting.
    webhook_token_key: SecretStr = SecretStr("change-me-webhook-token-key")
    webhook_max_bytes: int = Field(default=1_048_576, ge=1024)
    #: Replicate's Standard Webhooks signing secret (`whsec_...`, from
    #: `GET /v1/webhooks/default/secret`). Unset: every Replicate callback is refused.
    replicate_webhook_secret: SecretStr | None = None

    #: Where the notifier serves SSE; the gateway proxies `/api/v1/events` to it.
    notifier_url: str = "http://127.0.0.1:8083"
    #: Signs the short-lived events tokens; the notifier has the same setting.
    events_token_secret: SecretStr = SecretStr("change-me-events-token-secret")
    events_token_ttl_seconds: int = Field(default=300, ge=10, le=86_400)
    #: Event streams this process passes on at once (unset: no limit but the connections
    #: they hold); past it `GET /api/v1/events` answers 503 with `Retry-After`. Whatever it
    #: is, the connections of event streams are limited by the open-file limit (less
    #: `EVENT_STREAM_FD_RESERVE` for everything else): each browser stream holds one, and
    #: each stream from the notifier one, shared by the browser streams that want the same
    #: events (one owner's tabs).
    max_event_streams: int | None = Field(default=None, ge=1)
    #: Send the events cookie only over HTTPS (turn on behind TLS).
    events_cookie_secure: bool = False

    api_key_cache_seconds: float = Field(default=30.0, ge=0)

    #: Largest request body of an API operation (webhooks: `webhook_max_bytes`); counted
    #: while it streams in, 413 past it.
    max_body_bytes: int = Field(default=65_536, ge=1024)
    #: Requests per `rate_limit_window_seconds`, per API key and per client address for
    #: requests without a valid key; per gateway replica (429 with `Retry-After` past it).
    rate_limit_per_key: int = Field(default=600, ge=1)
    rate_limit_per_address: int = Field(default=120, ge=1)
    #: Thumbnails and previews per window and API key (a gallery scrolls through hundreds).
    rate_limit_pictures_per_key: int = Field(default=6000, ge=1)
    rate_limit_window_seconds: int = Field(default=60, ge=1)
    #: What each user may spend per UTC day (429 with `Retry-After` past it; what is left:
    #: `GET /api/v1/me/usage`): language-model calls (chats, prompt generation, titles)
    #: and generations (imagine, reroll, variation, upscale).
    llm_calls_per_day: int = Field(default=200, ge=0)
    generations_per_day: int = Field(default=200, ge=0)

    #: Browser sessions (the studio): how long one lasts from sign-in, how many one user may
    #: have open (signing in beyond that ends the oldest), and whether the cookie is sent
    #: only over HTTPS (turn on behind TLS).
    session_ttl_seconds: int = Field(default=7 * 86_400, ge=60, le=90 * 86_400)
    max_sessions_per_user: int = Field(default=20, ge=1, le=1000)
    session_cookie_secure: bool = False

    #: How long calls that wait for the language model (chats, prompt generation, titles)
    #: may take, instead of `rpc_timeout_seconds`. Keep it above the prompts service's
    #: `llm_deadline_seconds` (90 s), so the service's own 504 arrives rather than ours.
    llm_rpc_timeout_seconds: float = Field(default=120.0, gt=0)
    #: How long the answer to an Idempotency-Key is kept, and how long a request being
    #: answered holds its key at most (past it, a replica died: the key may be used again;
    #: keep it above the longest request, `llm_rpc_timeout_seconds`).
    idempotency_key_ttl_seconds: int = Field(default=86_400, ge=60, le=30 * 86_400)
    idempotency_lock_seconds: float = Field(default=300.0, gt=0)

    @field_validator("replicate_webhook_secret")
    @classmethod
    def _a_usable_signing_secret(cls, value: SecretStr | None) -> SecretStr | None:
        if value is not None:
            try:
                Webhook(value.get_secret_value())
            except Exception as exc:
                raise ValueError("not a Standard Webhooks secret (whsec_<base64>)") from exc
        return value
