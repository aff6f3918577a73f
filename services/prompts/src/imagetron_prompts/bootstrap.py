"""The composition root: builds the adapters from the settings and wires them to the edges."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator
from dataclasses import dataclass

from fastapi import FastAPI
from faststream.nats import NatsBroker
from openai import AsyncOpenAI
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from imagetron_platform.db import make_engine, make_session_factory, ping, utcnow
from imagetron_platform.http import install_platform
from imagetron_platform.messaging import make_broker
from imagetron_platform.outbox import OutboxRelay
from imagetron_prompts import migrations
from imagetron_prompts.adapters.llm import OpenAiLlm
from imagetron_prompts.adapters.tables import inbox, outbox
from imagetron_prompts.adapters.unit_of_work import PromptsUnitOfWork
from imagetron_prompts.app.ports import Dependencies, LlmPort
from imagetron_prompts.entrypoints.messaging import SERVICE, register_subscribers
from imagetron_prompts.settings import PromptsSettings

log = logging.getLogger(__name__)

#: How long shutdown waits for the relay's last pass to publish what is still pending.
_FINAL_RELAY_PASS_SECONDS = 5.0


@dataclass(frozen=True)
class Database:
    engine: AsyncEngine
    session_factory: async_sessionmaker[AsyncSession]


def build_database(settings: PromptsSettings) -> Database:
    """The engine and session factory; nothing connects until first used."""
    engine = make_engine(settings.database_url, pool_size=settings.database_pool_size)
    return Database(engine=engine, session_factory=make_session_factory(engine))


def build_llm_client(settings: PromptsSettings) -> AsyncOpenAI:
    """The SDK client: per-request timeout and transport retries (see `adapters.llm`)."""
    return AsyncOpenAI(
        base_url=settings.llm_base_url,
        api_key=settings.llm_api_key.get_secret_value(),
        timeout=settings.llm_timeout_seconds,
        max_retries=settings.llm_max_retries,
    )


def build_llm(settings: PromptsSettings, client: AsyncOpenAI) -> LlmPort:
    return OpenAiLlm(
        client,
        model=settings.llm_model,
        answer_attempts=settings.llm_answer_attempts,
        deadline_seconds=settings.llm_deadline_seconds,
    )


def build_dependencies(
    database: Database, llm: LlmPort, *, relay: OutboxRelay | None = None
) -> Dependencies:
    """Handler dependencies; with a `relay`, a commit that emitted events wakes it at once."""
    on_commit = relay.wake if relay is not None else None
    return Dependencies(
        uow=lambda: PromptsUnitOfWork(database.session_factory, on_commit=on_commit),
        clock=utcnow,
        llm=llm,
    )


def build_broker(settings: PromptsSettings, deps: Dependencies | None = None) -> NatsBroker:
    """A broker with every subscriber registered, not connected. Without `deps` the handlers
    use a database and an LLM client built from the settings (neither connects before it is
    used), so this also serves to render the service's AsyncAPI document."""
    broker = make_broker(settings.nats_url, SERVICE)
    if deps is None:
        llm = build_llm(settings, build_llm_client(settings))
        deps = build_dependencies(build_database(settings), llm)
    register_subscribers(broker, deps, llm_concurrency=settings.llm_concurrency)
    return broker


def create_app(settings: PromptsSettings) -> FastAPI:
    """The service's ASGI app: operational endpoints only (its API is on NATS). The lifespan
    migrates the schema, connects the broker, runs the outbox relay and stops them in order."""
    database = build_database(settings)
    broker = make_broker(settings.nats_url, SERVICE)
    relay = OutboxRelay(
        database.session_factory,
        outbox,
        broker,
        service=SERVICE,
        poll_seconds=settings.outbox_poll_seconds,
        inbox=inbox,
    )
    llm_client = build_llm_client(settings)
    register_subscribers(
        broker,
        build_dependencies(database, build_llm(settings, llm_client), relay=relay),
        llm_concurrency=settings.llm_concurrency,
    )

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        async with contextlib.AsyncExitStack() as stack:
            stack.push_async_callback(database.engine.dispose)
            stack.push_async_callback(llm_client.close)
            if settings.database_migrate_on_start:
                await asyncio.to_thread(migrations.upgrade, settings.database_url)
            await broker.start()
            stack.push_async_callback(broker.stop)
            relay_task = asyncio.create_task(relay.run(), name="prompts-outbox-relay")
            stack.push_async_callback(_stop_relay, relay, relay_task)
            # Stop taking messages before the relay's last pass: events of in-flight
            # handlers (FastStream waits for them) still go out on this connection.
            stack.push_async_callback(_stop_subscribers, broker)
            log.info("prompts service started")
            yield
            log.info("prompts service stopping")

    app = FastAPI(title="Imagetron prompts", lifespan=lifespan, openapi_url=None)

    async def database_ready() -> None:
        await ping(database.engine)

    async def nats_ready() -> None:
        if not await broker.ping(timeout=1.0):
            raise ConnectionError("not connected to NATS")

    install_platform(app, SERVICE, readiness={"database": database_ready, "nats": nats_ready})
    return app


async def _stop_subscribers(broker: NatsBroker) -> None:
    for subscriber in broker.subscribers:
        await subscriber.stop()


async def _stop_relay(relay: OutboxRelay, task: asyncio.Task[None]) -> None:
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task
    try:
        await asyncio.wait_for(relay.publish_pending(), timeout=_FINAL_RELAY_PASS_SECONDS)
    except Exception:
        # Nothing is lost: the rows stay unpublished and go out on the next start.
        log.warning("the outbox relay's last pass failed", exc_info=True)
