"""The images service against real PostgreSQL, NATS JetStream, S3 and the sandbox.

One service instance (and one sandbox) per module: the durable consumers have fixed names,
so two instances in one NATS would share their work. Tests keep apart by owner id.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from typing import Any
from uuid import UUID

import httpx
import nats
import pytest
from fastapi import FastAPI
from faststream.nats import NatsBroker
from nats.js.api import AckPolicy, ConsumerConfig, DeliverPolicy

from imagetron.servers import NatsServer
from imagetron_images.bootstrap import create_app
from imagetron_images.migrations import upgrade
from imagetron_images.settings import ImagesSettings
from imagetron_platform.nats_connection import provision_streams
from imagetron_platform.rpc import RpcClient
from imagetron_sandbox import SandboxSettings
from imagetron_sandbox import create_app as create_sandbox

from .support import (
    GOAPI_KEY,
    SANDBOX_FAST,
    TOKEN_KEY,
    WEBHOOK_SECRET,
    GatewayStandIn,
    PromptsStandIn,
    publish_callback,
)

pytestmark = pytest.mark.integration


@pytest.fixture(scope="session")
async def migrated(postgres_dsn: str) -> str:
    await asyncio.to_thread(upgrade, postgres_dsn)
    return postgres_dsn


@pytest.fixture(scope="session")
def nats_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A NATS server of these tests' own. The prompts service of the prompts tests stays on
    the shared one for the whole session, and would answer the generation reservations that
    `PromptsStandIn` answers here (a prompt it does not know: 404)."""
    server = NatsServer(tmp_path_factory.mktemp("images-nats"))
    server.start()
    try:
        yield server.url
    finally:
        server.stop()


@pytest.fixture(scope="session")
async def streams(nats_url: str) -> str:
    nc = await nats.connect(nats_url)
    try:
        await provision_streams(nc.jetstream())
    finally:
        await nc.close()
    return nats_url


@dataclass
class Stack:
    settings: ImagesSettings
    app: FastAPI
    rpc: RpcClient
    broker: NatsBroker
    gateway: GatewayStandIn
    sandbox_url: str
    http: httpx.AsyncClient

    async def deliver(self, task_id: UUID, body: dict[str, Any], message_id: str) -> None:
        """Publish a provider callback as the gateway does."""
        await publish_callback(self.broker, task_id, body, message_id)

    async def events(self, owner_id: UUID, settle: float = 0.5) -> list[tuple[str, dict[str, Any]]]:
        """Every event of `owner_id` in the EVENTS stream, in stream order."""
        nc = await nats.connect(self.settings.nats_url)
        try:
            js = nc.jetstream()
            sub = await js.pull_subscribe(
                f"events.images.{owner_id}.>",
                stream="EVENTS",
                config=ConsumerConfig(
                    deliver_policy=DeliverPolicy.ALL,
                    ack_policy=AckPolicy.NONE,
                    inactive_threshold=10.0,
                ),
            )
            found: list[tuple[str, dict[str, Any]]] = []
            while True:
                try:
                    batch = await sub.fetch(100, timeout=settle)
                except TimeoutError:  # nats-py raises its own subclass, or the plain one
                    return found
                found += [(m.subject, json.loads(m.data)) for m in batch]
        finally:
            await nc.close()


@pytest.fixture(scope="module")
def stack_settings() -> dict[str, Any]:
    """Settings a test module wants changed in its service instance (override it there).
    A `midjourney_proxy_base_url` that starts with `/` is a path of the sandbox."""
    return {}


def _on_the_sandbox(settings: dict[str, Any], sandbox_url: str) -> dict[str, Any]:
    path = settings.get("midjourney_proxy_base_url")
    if isinstance(path, str) and path.startswith("/"):
        return {**settings, "midjourney_proxy_base_url": sandbox_url + path.rstrip("/")}
    return settings


@pytest.fixture(scope="module")
async def stack(
    migrated: str,
    streams: str,
    s3_endpoint: str,
    s3_credentials: Any,
    serve: Any,
    stack_settings: dict[str, Any],
) -> AsyncIterator[Stack]:
    broker = NatsBroker(streams)
    await broker.connect()
    gateway = GatewayStandIn(broker)
    prompts = PromptsStandIn()

    def sandbox(port: int) -> FastAPI:
        return create_sandbox(SandboxSettings(port=port, goapi_api_key=GOAPI_KEY, **SANDBOX_FAST))

    async with (
        prompts.running(streams),
        serve(gateway.app()) as gateway_url,
        serve(sandbox) as sandbox_url,
        httpx.AsyncClient(timeout=10) as http,
    ):
        settings = ImagesSettings(
            database_url=migrated,
            nats_url=streams,
            s3_endpoint=s3_endpoint,
            s3_access_key=s3_credentials.access_key,
            s3_secret_key=s3_credentials.secret_key,
            s3_region=s3_credentials.region,
            s3_bucket="imagetron-images-it",
            goapi_base_url=sandbox_url,
            goapi_api_key=GOAPI_KEY,
            webhook_public_base_url=gateway_url,
            webhook_secret=WEBHOOK_SECRET,
            webhook_token_key=TOKEN_KEY,
            download_allow_hosts=[sandbox_url.removeprefix("http://")],
            outbox_poll_seconds=0.2,
            persist_max_deliveries=3,
            # The prompts stand-in shares two loaded cores with the whole suite: its answers
            # are not what these tests time.
            rpc_timeout_seconds=20.0,
            **_on_the_sandbox(stack_settings, sandbox_url),
        )
        app = create_app(settings)
        async with app.router.lifespan_context(app):
            yield Stack(
                settings=settings,
                app=app,
                rpc=RpcClient(broker, timeout=10.0),
                broker=broker,
                gateway=gateway,
                sandbox_url=sandbox_url,
                http=http,
            )
    await broker.stop()
