"""The composition root: adapters built from settings and wired into the handlers."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator
from datetime import timedelta

import httpx
from fastapi import FastAPI
from faststream.nats import NatsBroker
from minio import Minio

from imagetron_images.adapters.downloads import (
    SafeImageDownloader,
    SystemResolver,
    guarded_http_client,
)
from imagetron_images.adapters.image_files import PillowImageInspector
from imagetron_images.adapters.providers import build_providers
from imagetron_images.adapters.staging import StagedOrRemoteDownloader
from imagetron_images.adapters.storage import S3ImageStore, minio_client
from imagetron_images.adapters.tables import inbox, outbox
from imagetron_images.adapters.unit_of_work import ImagesUnitOfWork
from imagetron_images.app.dependencies import Dependencies
from imagetron_images.entrypoints.messaging import ConsumerSettings, register_subscribers
from imagetron_images.entrypoints.reconciliation import DispatchLoop, ReconciliationLoop
from imagetron_images.settings import ImagesSettings
from imagetron_platform.db import make_engine, make_session_factory, ping
from imagetron_platform.http import install_platform
from imagetron_platform.messaging import Redelivery, make_broker
from imagetron_platform.outbox import OutboxRelay

log = logging.getLogger(__name__)

SERVICE = "images"
# Longest an outbox flush may hold up shutdown; what is left goes out after the restart.
_FINAL_FLUSH_SECONDS = 5.0


class ImagesRuntime:
    """What the process owns: built from settings without connecting to anything, opened by
    the app's lifespan and closed by it."""

    def __init__(self, settings: ImagesSettings) -> None:
        self.settings = settings
        self.engine = make_engine(settings.database_url, pool_size=settings.database_pool_size)
        self.session_factory = make_session_factory(self.engine)
        self._provider_http = httpx.AsyncClient(timeout=settings.goapi_timeout_seconds)
        self._download_http = guarded_http_client()

        def s3(endpoint: str) -> Minio:
            return minio_client(
                endpoint,
                access_key=settings.s3_access_key,
                secret_key=settings.s3_secret_key.get_secret_value(),
                region=settings.s3_region,
            )

        self.store = S3ImageStore(
            s3(settings.s3_endpoint),
            s3(settings.s3_public_endpoint),
            bucket=settings.s3_bucket,
            url_ttl=timedelta(seconds=settings.content_url_ttl_seconds),
        )
        # Set once the broker exists; commits that emitted messages wake it up.
        self.relay: OutboxRelay | None = None
        self.deps = Dependencies(
            new_uow=self.new_uow,
            providers=build_providers(settings, self._provider_http, self.store),
            default_provider=settings.provider,
            max_in_flight=settings.max_in_flight_per_provider,
            downloader=StagedOrRemoteDownloader(
                self.store,
                SafeImageDownloader(
                    self._download_http,
                    resolver=SystemResolver(),
                    allow_hosts=settings.download_allow_hosts,
                    max_bytes=settings.download_max_bytes,
                    timeout_seconds=settings.download_timeout_seconds,
                ),
            ),
            inspector=PillowImageInspector(max_pixels=settings.max_pixels),
            store=self.store,
        )

    def new_uow(self) -> ImagesUnitOfWork:
        return ImagesUnitOfWork(self.session_factory, on_commit=self._wake_relay)

    def _wake_relay(self) -> None:
        if self.relay is not None:
            self.relay.wake()

    async def aclose(self) -> None:
        await self._provider_http.aclose()
        await self._download_http.aclose()
        await self.engine.dispose()


def consumer_settings(settings: ImagesSettings) -> ConsumerSettings:
    margin = settings.ack_wait_margin_seconds
    return ConsumerSettings(
        submit=Redelivery(
            max_deliver=settings.submit_max_deliveries,
            # OpenAI Images answers only when the images exist: its own, longer timeout.
            ack_wait_seconds=2
            * max(settings.goapi_timeout_seconds, settings.openai_timeout_seconds)
            + margin,
        ),
        persist=Redelivery(
            max_deliver=settings.persist_max_deliveries,
            ack_wait_seconds=2 * settings.download_timeout_seconds + 2 * margin,
        ),
        callbacks=Redelivery(max_deliver=10, ack_wait_seconds=2 * margin),
        persist_concurrency=settings.persist_concurrency,
    )


def build_broker(settings: ImagesSettings, deps: Dependencies | None = None) -> NatsBroker:
    """A broker with every subscriber registered, not connected. Without `deps` the
    handlers get adapters built from `settings` (enough for documents and contract tests)."""
    broker = make_broker(settings.nats_url, SERVICE)
    if deps is None:
        deps = ImagesRuntime(settings).deps
    register_subscribers(broker, deps, consumer_settings(settings))
    return broker


def create_app(settings: ImagesSettings | None = None) -> FastAPI:
    settings = settings or ImagesSettings()
    runtime = ImagesRuntime(settings)
    broker = build_broker(settings, runtime.deps)
    relay = OutboxRelay(
        runtime.session_factory,
        outbox,
        broker,
        service=SERVICE,
        poll_seconds=settings.outbox_poll_seconds,
        inbox=inbox,
    )
    runtime.relay = relay
    reconciliation = ReconciliationLoop(
        runtime.deps,
        interval_seconds=settings.reconcile_interval_seconds,
        quiet_for=timedelta(seconds=settings.reconcile_after_seconds),
        batch_size=settings.reconcile_batch_size,
    )
    dispatch = DispatchLoop(runtime.deps, interval_seconds=settings.dispatch_interval_seconds)

    @contextlib.asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        await runtime.store.ensure_bucket()
        await broker.start()
        relay_task = asyncio.create_task(relay.run(), name="images-outbox-relay")
        reconcile_task = asyncio.create_task(reconciliation.run(), name="images-reconciliation")
        dispatch_task = asyncio.create_task(dispatch.run(), name="images-dispatch")
        log.info("images service started")
        try:
            yield
        finally:
            # Stop taking work, publish what the last handlers committed, then disconnect.
            for loop in (reconcile_task, dispatch_task):
                loop.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await loop
            for subscriber in broker.subscribers:
                await subscriber.stop()
            relay_task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await relay_task
            try:
                async with asyncio.timeout(_FINAL_FLUSH_SECONDS):
                    await relay.publish_pending()
            except Exception:
                log.warning("final outbox flush failed; the next start publishes the rest")
            await broker.stop()
            await runtime.aclose()
            log.info("images service stopped")

    async def nats_ready() -> None:
        if not await broker.ping(timeout=1.0):
            raise RuntimeError("not connected to NATS")

    app = FastAPI(
        title="Imagetron images (operations)",
        lifespan=lifespan,
        openapi_url=None,
        docs_url=None,
        redoc_url=None,
    )
    install_platform(
        app,
        SERVICE,
        readiness={
            "database": lambda: ping(runtime.engine),
            "nats": nats_ready,
            "s3": runtime.store.ping,
        },
    )
    app.state.runtime = runtime
    app.state.broker = broker
    return app
