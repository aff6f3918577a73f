"""The publisher running for real (its FastAPI lifespan: migrations, broker, outbox relay,
consumers) against the session's PostgreSQL, NATS and S3, uploading to the sandbox's
stand-in agency: a real asyncssh SFTP server in this process, with its fault knobs.

Image events are published on the EVENTS stream as the images service publishes them, some
before the publisher starts (it must catch up from the stream)."""

from __future__ import annotations

import asyncio
import io
import json
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import asyncssh
import nats
import pytest
from faststream.nats import NatsBroker
from minio import Minio
from nats.aio.client import Client as NatsClient
from nats.js import JetStreamContext

from imagetron.servers import S3Credentials
from imagetron_contracts.models.images import Image, ImageEvent, ImageKind
from imagetron_platform.nats_connection import provision_streams
from imagetron_platform.objects import minio_client
from imagetron_platform.rpc import RpcClient
from imagetron_publisher.bootstrap import create_app
from imagetron_publisher.settings import PublisherSettings
from imagetron_sandbox.agency.server import AgencyServer
from imagetron_sandbox.faults.store import FaultStore

from .support import AGENCY_PASSWORD, png

BUCKET = "publisher-tests"


@dataclass
class Agency:
    server: AgencyServer
    faults: FaultStore
    root: Path
    known_hosts: str

    def files(self, user: str) -> dict[str, bytes]:
        home = self.root / user
        if not home.exists():
            return {}
        return {p.name: p.read_bytes() for p in home.iterdir() if p.is_file()}


@pytest.fixture(scope="session")
async def agency(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Agency]:
    root = tmp_path_factory.mktemp("agency")
    faults = FaultStore()
    server = AgencyServer(root, faults, password=AGENCY_PASSWORD, max_bytes_per_user=50_000_000)
    key = asyncssh.generate_private_key("ssh-ed25519")
    port = await server.start("127.0.0.1", 0, key)
    known_hosts = f"[127.0.0.1]:{port} {key.export_public_key().decode().strip()}"
    try:
        yield Agency(server, faults, root, known_hosts)
    finally:
        await server.stop()


@pytest.fixture(autouse=True)
def no_faults(agency: Agency) -> None:
    agency.faults.reset()


@pytest.fixture(scope="session")
def s3(s3_endpoint: str, s3_credentials: S3Credentials) -> Minio:
    client = minio_client(
        s3_endpoint,
        access_key=s3_credentials.access_key,
        secret_key=s3_credentials.secret_key,
        region=s3_credentials.region,
    )
    if not client.bucket_exists(BUCKET):
        client.make_bucket(BUCKET)
    return client


@pytest.fixture(scope="session")
def settings(
    postgres_dsn: str,
    nats_url: str,
    s3_endpoint: str,
    s3_credentials: S3Credentials,
    agency: Agency,
) -> PublisherSettings:
    return PublisherSettings(
        database_url=postgres_dsn,
        nats_url=nats_url,
        outbox_poll_seconds=0.2,
        log_json=False,
        s3_endpoint=s3_endpoint,
        s3_access_key=s3_credentials.access_key,
        s3_secret_key=s3_credentials.secret_key,
        s3_region=s3_credentials.region,
        s3_bucket=BUCKET,
        adobe_stock_sftp_host="127.0.0.1",
        adobe_stock_sftp_port=agency.server.port,
        adobe_stock_sftp_known_hosts=agency.known_hosts,
        adobe_stock_upload_csv=True,
        upload_max_deliveries=3,
        sftp_connect_timeout_seconds=5,
        sftp_upload_timeout_seconds=10,
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
    await provision_streams(js)
    return js


@dataclass
class Images:
    """Stores originals in the bucket and announces them as the images service does."""

    s3: Minio
    js: JetStreamContext
    published: list[uuid.UUID] = field(default_factory=list)

    async def stored(
        self,
        owner: uuid.UUID,
        data: bytes,
        *,
        width: int,
        height: int,
        text: str = "a ripe pear on a linen cloth, morning light --ar 3:2",
        title: str | None = "Ripe pear on linen",
    ) -> uuid.UUID:
        image_id, task_id = uuid.uuid4(), uuid.uuid4()
        key = f"{owner}/{task_id}/upscale-1-{image_id}.png"
        await asyncio.to_thread(
            self.s3.put_object, BUCKET, key, io.BytesIO(data), len(data), "image/png"
        )
        now = datetime.now(UTC)
        event = ImageEvent(
            id=uuid.uuid4(),
            type="image.persisted",
            occurred_at=now,
            owner_id=owner,
            image=Image(
                id=image_id,
                owner_id=owner,
                task_id=task_id,
                prompt_id=uuid.uuid4(),
                kind=ImageKind.upscale,
                index=1,
                is_persisted=True,
                content_type="image/png",
                bytes=len(data),
                width=width,
                height=height,
                sha256="0" * 64,
                attempts=1,
                created_at=now,
                persisted_at=now,
            ),
            storage_key=key,
            prompt_text=text,
            prompt_title=title,
        )
        await self.js.publish(
            f"events.images.{owner}.image.persisted",
            json.dumps(event.model_dump(mode="json")).encode(),
            headers={"Nats-Msg-Id": str(event.id)},
        )
        self.published.append(image_id)
        return image_id


@pytest.fixture(scope="session")
def images(s3: Minio, js: JetStreamContext) -> Images:
    return Images(s3, js)


@pytest.fixture(scope="session")
async def early_image(images: Images) -> tuple[uuid.UUID, uuid.UUID]:
    """An image stored (and announced) before the publisher ever ran."""
    owner = uuid.uuid4()
    image_id = await images.stored(owner, png(2560, 1960), width=2560, height=1960)
    return owner, image_id


@pytest.fixture(scope="session")
async def publisher(
    settings: PublisherSettings, js: JetStreamContext, early_image: Any, s3: Minio
) -> AsyncIterator[Any]:
    app = create_app(settings)
    async with app.router.lifespan_context(app):
        yield app


@pytest.fixture(scope="session")
async def rpc(nats_url: str, publisher: Any) -> AsyncIterator[RpcClient]:
    broker = NatsBroker(nats_url)
    await broker.connect()
    try:
        yield RpcClient(broker, timeout=30.0)
    finally:
        await broker.stop()
