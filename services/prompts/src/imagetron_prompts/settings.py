"""The prompts service's settings: `IMAGETRON_*` environment variables (and `.env`)."""

from __future__ import annotations

from imagetron_platform.settings import DatabaseSettings
from pydantic import Field, SecretStr


class PromptsSettings(DatabaseSettings):
    http_port: int = Field(default=8081, ge=0, le=65535)
    database_migrate_on_start: bool = Field(
        default=True,
        description="Apply the schema migrations when the service starts (an advisory lock "
        "serialises replicas starting together).",
    )

    # The LLM workshop (subject chats, generated prompts and titles) talks to any
    # OpenAI-compatible server; the default is the local sandbox.
    llm_base_url: str = "http://127.0.0.1:8090/v1"
    llm_api_key: SecretStr = SecretStr("sandbox")
    llm_model: str = "gpt-4o-mini"
    llm_timeout_seconds: float = Field(default=60.0, gt=0)
