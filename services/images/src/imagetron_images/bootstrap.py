"""The composition root: adapters built from settings and wired into the handlers."""

from __future__ import annotations

from datetime import timedelta

import httpx
from fastapi import FastAPI
from faststream.nats import NatsBroker
from minio import Minio

from imagetron_images import metrics
from imagetron_images.adapters.download_slots import FairSlots
from imagetron_images.adapters.downloads import (
    SafeImageDownloader,
    SystemResolver,
    guarded_http_client,
)
from imagetron_images.adapters.image_files import (
    ImageWork,
    PillowImageInspector,
    PillowThumbnailer,
    PixelBudget,
)
from imagetron_images.adapters.openai_images import openai_client
from imagetron_images.adapters.prompt_ledger import RpcPromptLedger
from imagetron_images.adapters.providers import build_providers
from imagetron_images.adapters.staging import StagedOrRemoteDownloader
from imagetron_images.adapters.storage import S3ImageStore
from imagetron_images.adapters.tables import inbox, outbox
from imagetron_images.adapters.unit_of_work import ImagesUnitOfWork
from imagetron_images.app.census import take_census
from imagetron_images.app.dependencies import Dependencies
from imagetron_images.app.dispatch import Slots, dispatch_all
from imagetron_images.app.reconciliation import Expectations, ReconcilePolicy, reconcile
from imagetron_images.domain import Deadlines
from imagetron_images.entrypoints.messaging import ConsumerSettings, register_subscribers
from imagetron_images.settings import ImagesSettings
from imagetron_platform.first_use import OnFirstUse
from imagetron_platform.lifecycle import ServiceLifecycle
from imagetron_platform.messaging import Redelivery
from imagetron_platform.objects import minio_client
from imagetron_platform.rpc import RpcClient

SERVICE = "images"


class ImagesRuntime:
    """The adapters, built from settings without connecting to anything; `lifecycle` opens
    and closes them."""

    def __init__(self, settings: ImagesSettings) -> None:
        self.settings = settings
        self.lifecycle, database = ServiceLifecycle.with_database(
            SERVICE, settings, outbox=outbox, inbox=inbox
        )
        self.broker = self.lifecycle.broker
        self.session_factory = database.session_factory
        provider_http = httpx.AsyncClient(timeout=settings.goapi_timeout_seconds)
        download_http = guarded_http_client()
        openai = OnFirstUse(
            lambda: openai_client(
                base_url=settings.openai_base_url,
                api_key=settings.openai_api_key.get_secret_value(),
                timeout_seconds=settings.openai_timeout_seconds,
            )
        )

        async def close_openai() -> None:
            if (client := openai.built) is not None:
                await client.close()

        self.lifecycle.close_on_shutdown(provider_http.aclose)
        self.lifecycle.close_on_shutdown(close_openai)
        self.lifecycle.close_on_shutdown(download_http.aclose)
        image_work = ImageWork(settings.image_workers)
        self.lifecycle.close_on_shutdown(image_work.close)
        #: Pixels decoded at once, by inspections and thumbnails alike.
        decodes = PixelBudget(max(settings.decode_pixel_budget, settings.max_pixels))

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
        self.deps = Dependencies(
            new_uow=self.new_uow,
            providers=build_providers(settings, provider_http, self.store, openai),
            default_provider=settings.provider,
            slots=slots(settings),
            prompt_ledger=RpcPromptLedger(
                # Within the time the gateway gives the whole request.
                RpcClient(self.broker, timeout=settings.rpc_timeout_seconds / 2)
            ),
            downloader=StagedOrRemoteDownloader(
                self.store,
                SafeImageDownloader(
                    download_http,
                    resolver=SystemResolver(),
                    allow_hosts=settings.download_allow_hosts,
                    max_bytes=settings.download_max_bytes,
                    timeout_seconds=settings.download_timeout_seconds,
                    min_bytes_per_second=settings.download_min_bytes_per_second,
                    grace_seconds=settings.download_grace_seconds,
                ),
            ),
            download_slots=FairSlots(
                total=settings.persist_concurrency,
                per_owner=settings.download_per_owner,
                per_host=settings.download_per_host,
                max_wait_seconds=settings.download_slot_wait_seconds,
            ),
            inspector=PillowImageInspector(
                max_pixels=settings.max_pixels, budget=decodes, work=image_work
            ),
            store=self.store,
            thumbnailer=PillowThumbnailer(
                max_pixels=settings.max_pixels, budget=decodes, work=image_work
            ),
        )

    def new_uow(self) -> ImagesUnitOfWork:
        return ImagesUnitOfWork(self.session_factory, on_commit=self.lifecycle.wake_relay)


def slots(settings: ImagesSettings) -> Slots:
    return Slots(
        per_provider=settings.max_in_flight_per_provider,
        deadlines=Deadlines(
            timedelta(seconds=settings.task_deadline_seconds),
            {key: timedelta(seconds=s) for key, s in settings.task_deadlines.items()},
        ),
    )


def reconcile_policy(settings: ImagesSettings) -> ReconcilePolicy:
    return ReconcilePolicy(
        # Every call to a provider has this timeout (the provider adapters' HTTP client).
        poll_timeout=timedelta(seconds=settings.goapi_timeout_seconds),
        floor=timedelta(seconds=settings.reconcile_after_seconds),
        retry_first=timedelta(seconds=settings.reconcile_retry_seconds),
        retry_max=timedelta(seconds=settings.reconcile_max_delay_seconds),
        batch_size=settings.reconcile_batch_size,
    )


def consumer_settings(settings: ImagesSettings) -> ConsumerSettings:
    # Every job reports itself in progress while it runs (platform `in_progress`), so
    # `ack_wait` only bounds how long a crashed consumer holds a job, not the slowest
    # attempt (the adapters' own timeouts bound each attempt): the work of a process that
    # died resumes within `ACK_WAIT_SECONDS`.
    ack_wait = settings.ack_wait_seconds
    return ConsumerSettings(
        submit=Redelivery(max_deliver=settings.submit_max_deliveries, ack_wait_seconds=ack_wait),
        persist=Redelivery(max_deliver=settings.persist_max_deliveries, ack_wait_seconds=ack_wait),
        callbacks=Redelivery(max_deliver=10, ack_wait_seconds=ack_wait),
        persist_in_flight=settings.persist_in_flight,
        callback_concurrency=settings.callback_concurrency,
    )


def build_broker(settings: ImagesSettings, deps: Dependencies | None = None) -> NatsBroker:
    """A broker with every subscriber registered, not connected. Without `deps` the
    handlers get adapters built from `settings` (enough for documents and contract tests)."""
    runtime = ImagesRuntime(settings)
    register_subscribers(runtime.broker, deps or runtime.deps, consumer_settings(settings))
    return runtime.broker


def create_app(settings: ImagesSettings | None = None) -> FastAPI:
    settings = settings or ImagesSettings()
    runtime = ImagesRuntime(settings)
    register_subscribers(runtime.broker, runtime.deps, consumer_settings(settings))
    lifecycle = runtime.lifecycle
    lifecycle.before_connect(runtime.store.ensure_bucket)
    deps = runtime.deps

    policy = reconcile_policy(settings)
    expectations = Expectations(floor=policy.floor)

    async def reconcile_round() -> None:
        # Bounded batches; replicas claim tasks that do not overlap.
        await reconcile(
            deps.new_uow(),
            deps.providers,
            expectations=expectations,
            policy=policy,
            slots=deps.slots,
        )

    async def dispatch() -> None:
        # Slots that ended tasks freed go to waiting tasks, fair share per provider.
        await dispatch_all(deps.new_uow(), list(deps.providers), deps.slots)

    async def census() -> None:
        metrics.record(await take_census(deps.new_uow()), list(deps.providers))

    lifecycle.every("census", settings.census_interval_seconds, census)
    lifecycle.every("reconciliation", settings.reconcile_interval_seconds, reconcile_round)
    lifecycle.every("dispatch", settings.dispatch_interval_seconds, dispatch)
    lifecycle.check("s3", runtime.store.ping)
    return lifecycle.app(
        title="Imagetron images (operations)", metrics_access=settings.metrics_access(public=False)
    )
