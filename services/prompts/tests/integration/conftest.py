"""The prompts service running for real (its FastAPI lifespan: migrations, broker, outbox
relay) against the session's PostgreSQL and NATS from the root `conftest.py`, and the
sandbox's OpenAI-compatible chat server in a real uvicorn as its language model."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import nats
import pytest
from faststream.nats import NatsBroker
from nats.aio.client import Client as NatsClient
from nats.aio.msg import Msg
from nats.js import JetStreamContext
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from imagetron.testing import serving
from imagetron_platform.db import make_engine, make_session_factory
from imagetron_platform.nats_connection import provision_streams
from imagetron_platform.rpc import RpcClient
from imagetron_prompts.bootstrap import create_app
from imagetron_prompts.entrypoints.messaging import TASK_EVENTS_DURABLE
from imagetron_prompts.settings import PromptsSettings
from imagetron_sandbox import SandboxSettings
from imagetron_sandbox import create_app as create_sandbox

from .support import LLM_DEADLINE_SECONDS, LLM_MAX_RETRIES, LLM_TIMEOUT_SECONDS


@pytest.fixture(scope="session")
async def sandbox_url() -> AsyncIterator[str]:
    """The sandbox (chat completions, fault knobs) on a free loopback port."""
    async with serving(create_sandbox(SandboxSettings(port=0, log_level="warning"))) as url:
        yield url


@pytest.fixture(scope="session")
def settings(postgres_dsn: str, nats_url: str, sandbox_url: str) -> PromptsSettings:
    return PromptsSettings(
        database_url=postgres_dsn,
        nats_url=nats_url,
        outbox_poll_seconds=0.2,
        log_json=False,
        llm_base_url=f"{sandbox_url}/v1",
        llm_timeout_seconds=LLM_TIMEOUT_SECONDS,
        llm_max_retries=LLM_MAX_RETRIES,
        llm_deadline_seconds=LLM_DEADLINE_SECONDS,
    )


@pytest.fixture(scope="session")
async def nc(nats_url: str) -> AsyncIterator[NatsClient]:
    client = await nats.connect(nats_url)
    try:
        yield client
    finally:
        await client.drain()


@pytest.fixture(scope="session")
async def js(nc: NatsClient) -> JetStreamContext:
    js = nc.jetstream()
    # The provisioning step `imagetron up` does; idempotent.
    await provision_streams(js)
    return js


@pytest.fixture(scope="session")
async def prompts_app(settings: PromptsSettings, js: JetStreamContext) -> AsyncIterator[Any]:
    """The service, started once per session exactly as `imagetron-prompts` starts it."""
    app = create_app(settings)
    async with app.router.lifespan_context(app):
        yield app


@pytest.fixture(scope="session")
async def rpc(nats_url: str, prompts_app: Any) -> AsyncIterator[RpcClient]:
    broker = NatsBroker(nats_url)
    await broker.connect()
    try:
        yield RpcClient(broker, timeout=LLM_DEADLINE_SECONDS + 5.0)
    finally:
        await broker.stop()


@pytest.fixture(scope="session")
async def session_factory(
    settings: PromptsSettings,
) -> AsyncIterator[async_sessionmaker[AsyncSession]]:
    engine = make_engine(settings.database_url)
    try:
        yield make_session_factory(engine)
    finally:
        await engine.dispose()


@dataclass
class Captured:
    subject: str
    msg_id: str | None
    body: dict[str, Any]


class EventTap:
    """Every message on a subject, as it arrives (core NATS sees stream publishes too)."""

    def __init__(self) -> None:
        self.messages: list[Captured] = []
        self._arrived = asyncio.Event()

    async def on_message(self, msg: Msg) -> None:
        headers = msg.headers or {}
        self.messages.append(
            Captured(msg.subject, headers.get("Nats-Msg-Id"), json.loads(msg.data))
        )
        self._arrived.set()

    async def wait_for(self, count: int, timeout: float = 10.0) -> list[Captured]:
        async with asyncio.timeout(timeout):
            while len(self.messages) < count:
                self._arrived.clear()
                await self._arrived.wait()
        return self.messages


@pytest.fixture
async def tap(nc: NatsClient) -> AsyncIterator[Callable[[str], Awaitable[EventTap]]]:
    subscriptions = []

    async def subscribe(subject: str) -> EventTap:
        tap = EventTap()
        subscriptions.append(await nc.subscribe(subject, cb=tap.on_message))
        await nc.flush()
        return tap

    yield subscribe
    for subscription in subscriptions:
        await subscription.unsubscribe()


@pytest.fixture
def consumed(js: JetStreamContext) -> Callable[..., Awaitable[None]]:
    """`await consumed()`: until the service's durable consumer has nothing left to deliver
    and nothing unacked."""

    async def wait(timeout: float = 15.0) -> None:
        async with asyncio.timeout(timeout):
            while True:
                info = await js.consumer_info("EVENTS", TASK_EVENTS_DURABLE)
                if info.num_pending == 0 and info.num_ack_pending == 0:
                    return
                await asyncio.sleep(0.05)

    return wait
