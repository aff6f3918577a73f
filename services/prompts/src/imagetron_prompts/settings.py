"""The prompts service's settings: `IMAGETRON_*` environment variables (and `.env`)."""

from __future__ import annotations

from pydantic import Field, SecretStr

from imagetron_platform.settings import DatabaseSettings


class PromptsSettings(DatabaseSettings):
    http_port: int = Field(default=8081, ge=0, le=65535)
    database_migrate_on_start: bool = Field(
        default=True,
        description="Apply the schema migrations when the service starts (an advisory lock "
        "serialises replicas starting together).",
    )

    # The LLM workshop (subject chats, generated prompts and titles) talks to any
    # OpenAI-compatible server; the default is the local sandbox. See `adapters/llm.py`
    # for how the limits below combine.
    llm_base_url: str = "http://127.0.0.1:8090/v1"
    llm_api_key: SecretStr = SecretStr("sandbox")
    llm_model: str = "gpt-4o-mini"
    llm_timeout_seconds: float = Field(
        default=60.0, gt=0, description="Bound on one HTTP request to the model."
    )
    llm_max_retries: int = Field(
        default=2,
        ge=0,
        le=10,
        description="Retries of one request on 408/409/429/5xx, connection errors and "
        "timeouts (the SDK's exponential backoff, honouring Retry-After).",
    )
    llm_answer_attempts: int = Field(
        default=3,
        ge=1,
        le=10,
        description="How many answers to ask for, in all, while they are malformed, refused "
        "or cut off; then the call fails with a 502 naming the cause.",
    )
    llm_deadline_seconds: float = Field(
        default=90.0,
        gt=0,
        description="Bound on a whole call, every attempt and retry included (then 504). "
        "Keep it below the gateway's `llm_rpc_timeout_seconds`.",
    )
    generation_reservation_ttl_seconds: float = Field(
        default=900.0,
        gt=0,
        description="A generation reserved on a prompt whose task never showed up (its "
        "creation failed with the images service down) is let go after this long, checked "
        "every minute.",
    )
    llm_concurrency: int = Field(
        default=8,
        ge=1,
        le=256,
        description="Requests each LLM-backed subject handles at once per replica.",
    )
