"""The notifier's composition root."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI
from faststream.nats import NatsBroker
from starlette.middleware import Middleware

from imagetron_notifier.adapters.jetstream_feed import JetStreamFeed, LiveHub
from imagetron_notifier.adapters.revoked_keys import RevokedKeys
from imagetron_notifier.entrypoints import sse
from imagetron_notifier.entrypoints.sse import NotifierState
from imagetron_notifier.settings import NotifierSettings
from imagetron_platform.event_stream import StreamsOutsideTheRoute
from imagetron_platform.lifecycle import ServiceLifecycle
from imagetron_platform.messaging import make_broker

SERVICE = "notifier"


def build_broker(settings: NotifierSettings) -> NatsBroker:
    """The notifier reads the EVENTS stream with ordered consumers of its own (LiveHub and
    replays in JetStreamFeed), not broker subscribers: each browser needs its own position."""
    return make_broker(settings, SERVICE)


def create_app(settings: NotifierSettings | None = None) -> FastAPI:
    settings = settings or NotifierSettings()
    broker = build_broker(settings)
    lifecycle = ServiceLifecycle(SERVICE, broker)

    @asynccontextmanager
    async def state() -> AsyncIterator[NotifierState]:
        # The live feed needs the connection, so it starts once the broker is connected.
        hub = LiveHub(
            broker.connection,
            queue_size=settings.client_queue_size,
            heartbeat_seconds=settings.heartbeat_seconds,
        )
        await hub.start()
        revoked = RevokedKeys(broker.connection)
        await revoked.start()
        try:
            yield NotifierState(
                settings=settings,
                hub=hub,
                feed=JetStreamFeed(broker.connection, hub),
                revoked=revoked,
            )
        finally:
            await revoked.stop()
            await hub.stop()

    app = lifecycle.app(
        title="Imagetron notifier", state=state, metrics_access=settings.metrics_access(public=True)
    )
    app.include_router(sse.router)
    # Innermost (appended, not added on top): streams are served inside the platform's
    # metrics, correlation ids and security headers, outside the routing.
    app.user_middleware.append(Middleware(StreamsOutsideTheRoute))
    return app
