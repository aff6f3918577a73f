"""The composition root: adapters built from settings and wired into the handlers."""

from __future__ import annotations

import asyncio

from fastapi import FastAPI
from faststream.nats import NatsBroker

from imagetron_contracts.models.publications import Agency
from imagetron_platform.clock import utcnow
from imagetron_platform.lifecycle import ServiceLifecycle
from imagetron_platform.messaging import Redelivery
from imagetron_platform.objects import minio_client
from imagetron_platform.rpc import RpcClient
from imagetron_publisher.adapters.advisor import PromptsAdvisor
from imagetron_publisher.adapters.cipher import FernetCipher
from imagetron_publisher.adapters.rendering import PillowRenderer
from imagetron_publisher.adapters.sftp import SftpAgency, upload_deadline
from imagetron_publisher.adapters.storage import S3FileStore
from imagetron_publisher.adapters.tables import inbox, outbox
from imagetron_publisher.adapters.unit_of_work import PublisherUnitOfWork
from imagetron_publisher.app import delivery
from imagetron_publisher.app.dependencies import Dependencies
from imagetron_publisher.app.slots import AccountSlots
from imagetron_publisher.domain.batch import MAX_CSV_BYTES
from imagetron_publisher.entrypoints.messaging import (
    SERVICE,
    ConsumerSettings,
    register_subscribers,
)
from imagetron_publisher.settings import PublisherSettings
from imagetron_stock.files import MAX_FILE_BYTES

__all__ = ["SERVICE", "build_broker", "create_app"]


def adobe_stock(settings: PublisherSettings) -> SftpAgency:
    return SftpAgency(
        name="Adobe Stock",
        host=settings.adobe_stock_sftp_host,
        port=settings.adobe_stock_sftp_port,
        known_hosts=settings.adobe_stock_sftp_known_hosts,
        takes_csv=settings.adobe_stock_upload_csv,
        connect_timeout_seconds=settings.sftp_connect_timeout_seconds,
        upload_timeout_seconds=settings.sftp_upload_timeout_seconds,
        min_bytes_per_second=settings.sftp_min_bytes_per_second,
    )


class PublisherRuntime:
    """The adapters, built from settings without connecting to anything; `lifecycle` opens
    and closes them."""

    def __init__(self, settings: PublisherSettings) -> None:
        self.lifecycle, database = ServiceLifecycle.with_database(
            SERVICE, settings, outbox=outbox, inbox=inbox
        )
        self.broker = self.lifecycle.broker
        self.store = S3FileStore(
            minio_client(
                settings.s3_endpoint,
                access_key=settings.s3_access_key,
                secret_key=settings.s3_secret_key.get_secret_value(),
                region=settings.s3_region,
            ),
            bucket=settings.s3_bucket,
        )
        keys = [settings.credentials_key, *settings.credentials_previous_keys]
        on_commit = self.lifecycle.wake_relay
        self.deps = Dependencies(
            new_uow=lambda: PublisherUnitOfWork(database.session_factory, on_commit=on_commit),
            clock=utcnow,
            cipher=FernetCipher([k.get_secret_value() for k in keys]),
            advisor=PromptsAdvisor(
                RpcClient(self.broker, timeout=settings.rpc_timeout_seconds),
                timeout=settings.suggest_timeout_seconds,
            ),
            renderer=PillowRenderer(
                max_pixels=settings.max_source_pixels,
                quality=settings.jpeg_quality,
                concurrency=settings.prepare_concurrency,
            ),
            store=self.store,
            agencies={Agency.adobe_stock: adobe_stock(settings)},
            slots=AccountSlots(settings.uploads_per_account),
            max_original_bytes=settings.max_original_bytes,
        )


def consumer_settings(settings: PublisherSettings) -> ConsumerSettings:
    """`ack_wait` outlives the slowest legitimate attempt: an upload of the largest file
    (45 MB) at the minimum rate, with its connection and rendering."""

    def deadline(size: int) -> float:
        return upload_deadline(
            settings.sftp_connect_timeout_seconds,
            settings.sftp_upload_timeout_seconds,
            settings.sftp_min_bytes_per_second,
            size,
        )

    return ConsumerSettings(
        upload=Redelivery(
            max_deliver=settings.upload_max_deliveries,
            ack_wait_seconds=deadline(MAX_FILE_BYTES) + 120,
        ),
        suggest=Redelivery(
            max_deliver=settings.suggest_max_deliveries,
            ack_wait_seconds=settings.suggest_timeout_seconds + 30,
        ),
        csv=Redelivery(
            max_deliver=settings.csv_max_deliveries,
            ack_wait_seconds=deadline(MAX_CSV_BYTES) + 30,
        ),
        upload_concurrency=settings.upload_concurrency,
    )


def build_broker(settings: PublisherSettings, deps: Dependencies | None = None) -> NatsBroker:
    """A broker with every subscriber registered, not connected (documents, contract tests)."""
    runtime = PublisherRuntime(settings)
    register_subscribers(runtime.broker, deps or runtime.deps, consumer_settings(settings))
    return runtime.broker


def create_app(settings: PublisherSettings | None = None) -> FastAPI:
    settings = settings or PublisherSettings()
    runtime = PublisherRuntime(settings)
    register_subscribers(runtime.broker, runtime.deps, consumer_settings(settings))
    if settings.database_migrate_on_start:

        async def migrate() -> None:
            # Alembic only when asked to migrate (a third of a second of start-up).
            from imagetron_publisher import migrations

            await asyncio.to_thread(migrations.upgrade, settings.database_url)

        runtime.lifecycle.before_connect(migrate)
    deps = runtime.deps

    async def backlog() -> None:
        await delivery.measure_backlog(deps.new_uow(), deps.clock)

    runtime.lifecycle.every("delivery-backlog", 15.0, backlog)
    runtime.lifecycle.check("s3", runtime.store.ping)
    return runtime.lifecycle.app(
        title="Imagetron publisher (operations)",
        metrics_access=settings.metrics_access(public=False),
    )
