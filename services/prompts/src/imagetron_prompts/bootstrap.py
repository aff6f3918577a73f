"""The composition root: builds the adapters from the settings and wires them to the edges."""

from __future__ import annotations

import asyncio
from datetime import timedelta
from typing import TYPE_CHECKING

from fastapi import FastAPI
from faststream.nats import NatsBroker

from imagetron_platform.clock import utcnow
from imagetron_platform.lifecycle import ServiceLifecycle
from imagetron_prompts.adapters.llm_on_first_use import LlmOnFirstUse
from imagetron_prompts.adapters.tables import inbox, outbox
from imagetron_prompts.adapters.unit_of_work import PromptsUnitOfWork
from imagetron_prompts.app.dependencies import Dependencies
from imagetron_prompts.app.prompts import forget_deleted_prompts, release_expired_reservations
from imagetron_prompts.entrypoints.messaging import SERVICE, register_subscribers
from imagetron_prompts.settings import PromptsSettings

if TYPE_CHECKING:
    from openai import AsyncOpenAI

    from imagetron_prompts.adapters.llm import OpenAiLlm

#: How often reservations whose task never showed up are looked for.
RESERVATION_SWEEP_SECONDS = 60.0
#: How long a deleted prompt's id is remembered (a request that created it, sent again,
#: is answered 410 instead of creating it again): the longest Idempotency-Key lifetime the
#: gateway allows (`IMAGETRON_IDEMPOTENCY_KEY_TTL_SECONDS`, 30 days at most).
DELETED_PROMPT_MEMORY = timedelta(days=30)
#: How often the ids of prompts deleted longer ago than that are forgotten.
DELETED_PROMPT_SWEEP_SECONDS = 3600.0


def build_llm_client(settings: PromptsSettings) -> AsyncOpenAI:
    """The SDK client: per-request timeout and transport retries (see `adapters.llm`)."""
    from openai import AsyncOpenAI

    return AsyncOpenAI(
        base_url=settings.llm_base_url,
        api_key=settings.llm_api_key.get_secret_value(),
        timeout=settings.llm_timeout_seconds,
        max_retries=settings.llm_max_retries,
    )


def build_llm(settings: PromptsSettings) -> OpenAiLlm:
    """The language model over the `openai` SDK (imported here: `LlmOnFirstUse`)."""
    from imagetron_prompts.adapters.llm import OpenAiLlm

    return OpenAiLlm(
        build_llm_client(settings),
        model=settings.llm_model,
        answer_attempts=settings.llm_answer_attempts,
        deadline_seconds=settings.llm_deadline_seconds,
    )


class PromptsRuntime:
    """The adapters, built from settings without connecting to anything; `lifecycle` opens
    and closes them."""

    def __init__(self, settings: PromptsSettings) -> None:
        self.lifecycle, database = ServiceLifecycle.with_database(
            SERVICE, settings, outbox=outbox, inbox=inbox
        )
        self.broker = self.lifecycle.broker
        llm = LlmOnFirstUse(settings.llm_model, lambda: build_llm(settings))
        self.lifecycle.close_on_shutdown(llm.close)
        on_commit = self.lifecycle.wake_relay
        self.deps = Dependencies(
            new_uow=lambda: PromptsUnitOfWork(database.session_factory, on_commit=on_commit),
            clock=utcnow,
            llm=llm,
        )


def build_broker(settings: PromptsSettings, deps: Dependencies | None = None) -> NatsBroker:
    """A broker with every subscriber registered, not connected. Without `deps` the handlers
    use adapters built from the settings (none connects before it is used), so this also
    serves to render the service's AsyncAPI document."""
    runtime = PromptsRuntime(settings)
    register_subscribers(
        runtime.broker, deps or runtime.deps, llm_concurrency=settings.llm_concurrency
    )
    return runtime.broker


def create_app(settings: PromptsSettings) -> FastAPI:
    """The service's ASGI app: operational endpoints only (its API is on NATS)."""
    runtime = PromptsRuntime(settings)
    register_subscribers(runtime.broker, runtime.deps, llm_concurrency=settings.llm_concurrency)
    if settings.database_migrate_on_start:

        async def migrate() -> None:
            # Alembic only when asked to migrate (a third of a second of start-up).
            from imagetron_prompts import migrations

            await asyncio.to_thread(migrations.upgrade, settings.database_url)

        runtime.lifecycle.before_connect(migrate)
    deps = runtime.deps
    reservation_ttl = timedelta(seconds=settings.generation_reservation_ttl_seconds)

    async def release_expired() -> None:
        await release_expired_reservations(deps.new_uow(), deps.clock, older_than=reservation_ttl)

    runtime.lifecycle.every("reservations", RESERVATION_SWEEP_SECONDS, release_expired)

    async def forget_deleted() -> None:
        await forget_deleted_prompts(deps.new_uow(), deps.clock, older_than=DELETED_PROMPT_MEMORY)

    runtime.lifecycle.every("deleted prompts", DELETED_PROMPT_SWEEP_SECONDS, forget_deleted)
    return runtime.lifecycle.app(
        title="Imagetron prompts", metrics_access=settings.metrics_access(public=False)
    )
