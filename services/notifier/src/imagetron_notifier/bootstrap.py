"""The notifier's composition root."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI
from faststream.nats import NatsBroker

from imagetron_notifier.adapters.jetstream_feed import JetStreamFeed, LiveHub
from imagetron_notifier.entrypoints import sse
from imagetron_notifier.settings import NotifierSettings
from imagetron_platform.http import install_platform
from imagetron_platform.messaging import make_broker

SERVICE = "notifier"


def build_broker(settings: NotifierSettings) -> NatsBroker:
    """The notifier reads the EVENTS stream with ordered consumers of its own (LiveHub and
    replays in JetStreamFeed), not broker subscribers: each browser needs its own position."""
    return make_broker(settings.nats_url, SERVICE)


def create_app(settings: NotifierSettings | None = None) -> FastAPI:
    settings = settings or NotifierSettings()
    broker = build_broker(settings)

    async def nats_ready() -> None:
        if not await broker.ping(timeout=1.0):
            raise ConnectionError("NATS is not connected")

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        await broker.start()
        hub = LiveHub(
            broker.connection,
            queue_size=settings.client_queue_size,
            heartbeat_seconds=settings.heartbeat_seconds,
        )
        await hub.start()
        app.state.settings = settings
        app.state.hub = hub
        app.state.feed = JetStreamFeed(broker.connection, hub)
        try:
            yield
        finally:
            await hub.stop()
            await broker.stop()

    app = FastAPI(
        title="Imagetron notifier",
        lifespan=lifespan,
        openapi_url=None,
        docs_url=None,
        redoc_url=None,
    )
    install_platform(app, SERVICE, {"nats": nats_ready})
    app.include_router(sse.router)
    return app
