"""The NATS users, tried against a real nats-server configured as every deployment is
(`nats_access.authorization_config`): no anonymous use, only the gateway publishes verified
webhooks, no service forges another's events or jobs, and a service reads only what its
operations in the contract consume -- not through the stream API, not through another's
consumer, not through core subscriptions, not through another's inboxes. A service broker
made by `make_broker` works as its user, over TLS too."""

from __future__ import annotations

import asyncio
import datetime
import ipaddress
import json
import secrets
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from pathlib import Path
from uuid import uuid4

import nats
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from faststream.nats import PullSub
from nats.aio.client import Client
from nats.js.api import ConsumerConfig, DeliverPolicy
from pydantic import SecretStr

from imagetron.servers import NatsServer
from imagetron_contracts.streams import EVENTS_STREAM
from imagetron_platform.messaging import jstream, make_broker
from imagetron_platform.nats_access import (
    PROVISIONING,
    USERS,
    NatsPermissions,
    authorization_config,
)
from imagetron_platform.nats_connection import nats_connect_options
from imagetron_platform.settings import NatsSettings

pytestmark = pytest.mark.integration

ADMIN = "admin"
EVERYONE = {**USERS, ADMIN: NatsPermissions(publish=(">",), subscribe=(">",))}
PASSWORDS = {user: secrets.token_urlsafe(16) for user in EVERYONE}
#: How long a request the server refuses to deliver is given (it never gets an answer).
REFUSED = 0.5
OWNER = uuid4()


def settings(url: str, user: str) -> NatsSettings:
    return NatsSettings(nats_url=url, nats_user=user, nats_password=SecretStr(PASSWORDS[user]))


@pytest.fixture(scope="module")
def locked_nats(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    server = NatsServer(
        tmp_path_factory.mktemp("locked-nats"),
        config=authorization_config(PASSWORDS, users=EVERYONE),
    )
    server.start()
    try:
        yield server.url
    finally:
        server.stop()


class Session:
    """A connection as one user, with the permission violations the server reported."""

    def __init__(self, nc: Client, errors: list[Exception]) -> None:
        self.nc = nc
        self.js = nc.jetstream(timeout=REFUSED)
        self._errors = errors

    async def violations(self) -> list[str]:
        await self.nc.flush()
        await asyncio.sleep(0.05)  # errors arrive after the flush's PONG at the latest
        return [str(e) for e in self._errors if "permissions violation" in str(e).lower()]


@asynccontextmanager
async def session(url: str, user: str) -> AsyncIterator[Session]:
    errors: list[Exception] = []

    async def collect(error: Exception) -> None:
        errors.append(error)

    nc = await nats.connect(
        url, error_cb=collect, **nats_connect_options(settings(url, user), user)
    )
    try:
        yield Session(nc, errors)
    finally:
        await nc.close()


@pytest.fixture(scope="module")
async def provisioned(locked_nats: str) -> str:
    # The provisioning user creates the streams: that is all it may do.
    from imagetron.provision import provision

    await provision(settings(locked_nats, PROVISIONING))
    return locked_nats


async def _stored(url: str, stream: str) -> int:
    async with session(url, ADMIN) as admin:
        return (await admin.js.stream_info(stream)).state.messages


async def test_anonymous_and_wrong_passwords_are_refused(locked_nats: str) -> None:
    for credentials in ({}, {"user": "gateway", "password": "not-its-password"}):
        with pytest.raises(nats.errors.Error, match="Authorization Violation"):
            await nats.connect(
                locked_nats, allow_reconnect=False, max_reconnect_attempts=0, **credentials
            )


async def test_only_the_gateway_publishes_verified_webhooks(provisioned: str) -> None:
    before = await _stored(provisioned, "WEBHOOKS")

    async def forge(user: str) -> None:
        async with session(provisioned, user) as intruder:
            with pytest.raises(TimeoutError):
                await intruder.js.publish("webhooks.goapi", b'{"forged": true}')
            await intruder.nc.publish("webhooks.replicate", b'{"forged": true}')
            assert len(await intruder.violations()) == 2, user

    await asyncio.gather(*(forge(user) for user in USERS if user != "gateway"))
    assert await _stored(provisioned, "WEBHOOKS") == before
    async with session(provisioned, "gateway") as gateway:
        ack = await gateway.js.publish("webhooks.goapi", b"{}", stream="WEBHOOKS")
        assert ack.stream == "WEBHOOKS"
        assert not await gateway.violations()
    assert await _stored(provisioned, "WEBHOOKS") == before + 1


async def test_no_service_forges_another_services_events_or_jobs(provisioned: str) -> None:
    forgeries = {
        "publisher": f"events.images.{OWNER}.task.completed",
        "prompts": f"events.publisher.{OWNER}.publication.uploaded",
        "images": f"events.prompts.{OWNER}.prompt.created",
        "gateway": "work.images.submit",
        "notifier": "work.publisher.upload",
        PROVISIONING: f"events.images.{OWNER}.image.stored",
    }
    before = {s: await _stored(provisioned, s) for s in ("EVENTS", "WORK")}
    for user, subject in forgeries.items():
        async with session(provisioned, user) as forger:
            await forger.nc.publish(subject, b"{}")
            assert await forger.violations(), (user, subject)
    assert {s: await _stored(provisioned, s) for s in ("EVENTS", "WORK")} == before


async def test_a_service_reads_only_the_events_it_consumes(provisioned: str) -> None:
    """prompts consumes task events; a publication event is none of its business, and no
    way of reading the stream other than its own consumer is open to it."""
    async with session(provisioned, ADMIN) as admin:
        await admin.js.publish(f"events.publisher.{OWNER}.publication.uploaded", b"{}")
        task_event = await admin.js.publish(f"events.images.{OWNER}.task.completed", b"{}")
    async with session(provisioned, "prompts") as prompts:
        # Its own durable consumer, with the contract's filter: allowed.
        own = await prompts.js.pull_subscribe(
            "events.images.*.task.*", durable="prompts-task-events", stream="EVENTS"
        )
        fetched = await own.fetch(10, timeout=2)
        assert {m.metadata.sequence.stream for m in fetched} == {task_event.seq}
        for message in fetched:
            await message.ack()
        assert not await prompts.violations()

        refused = [
            # consumers of its own making on other subjects, named or not, or another's
            prompts.js.add_consumer(
                "EVENTS", ConsumerConfig(name="peek", filter_subject="events.publisher.>")
            ),
            prompts.js.add_consumer(
                "EVENTS", ConsumerConfig(durable_name="peek", filter_subject="events.>")
            ),
            prompts.js.subscribe("events.>", stream="EVENTS", ordered_consumer=True),
            prompts.nc.request(
                "$JS.API.CONSUMER.MSG.NEXT.EVENTS.publisher-image-events", b"1", timeout=REFUSED
            ),
            # the stream's messages by sequence
            prompts.js.get_msg("EVENTS", seq=1),
            prompts.js.get_msg("EVENTS", seq=1, direct=True),
            prompts.js.stream_info("EVENTS"),
        ]
        for outcome in await asyncio.gather(*refused, return_exceptions=True):
            assert isinstance(outcome, TimeoutError | nats.errors.Error), outcome
        # live copies on core NATS, and other users' inboxes (their deliveries and replies)
        for subject in ("events.>", "_INBOX.>", "_INBOX.notifier.>", "_INBOX.gateway.>"):
            await prompts.nc.subscribe(subject)
        assert len(await prompts.violations()) == len(refused) + 4

        # Its own consumer's name with a wider filter in the body: the server refuses.
        answer = await prompts.nc.request(
            "$JS.API.CONSUMER.CREATE.EVENTS.prompts-task-events.events.images.*.task.*",
            json.dumps(
                {
                    "stream_name": "EVENTS",
                    "config": {"durable_name": "prompts-task-events", "filter_subject": ">"},
                }
            ).encode(),
            timeout=2,
        )
        assert "error" in json.loads(answer.data)


async def test_the_notifier_reads_events_and_nothing_else(provisioned: str) -> None:
    async with session(provisioned, "notifier") as notifier:
        events = await notifier.js.subscribe(
            "events.>", stream="EVENTS", ordered_consumer=True, deliver_policy=DeliverPolicy.ALL
        )
        await events.next_msg(timeout=2)
        await events.unsubscribe()
        assert not await notifier.violations()
        refused = [
            notifier.js.subscribe("webhooks.>", stream="WEBHOOKS", ordered_consumer=True),
            notifier.js.subscribe("work.>", stream="WORK", ordered_consumer=True),
        ]
        for outcome in await asyncio.gather(*refused, return_exceptions=True):
            assert isinstance(outcome, TimeoutError | nats.errors.Error), outcome
        assert len(await notifier.violations()) == 2


async def test_requests_reach_their_service_and_answers_only_the_requester(
    provisioned: str,
) -> None:
    async with (
        session(provisioned, "prompts") as prompts,
        session(provisioned, "gateway") as gateway,
        session(provisioned, "images") as images,
    ):

        async def answer(msg: nats.aio.msg.Msg) -> None:
            await msg.respond(b"answered")

        await prompts.nc.subscribe("rpc.prompts.create", queue="prompts", cb=answer)
        await prompts.nc.flush()
        reply = await gateway.nc.request("rpc.prompts.create", b"{}", timeout=2)
        assert reply.data == b"answered"
        # images may not take the prompts' commands, nor answer into the gateway's inbox
        await images.nc.subscribe("rpc.prompts.create")
        await images.nc.publish(reply.subject, b"forged answer")
        assert len(await images.violations()) == 2
        assert not await prompts.violations()
        assert not await gateway.violations()


async def test_a_service_broker_consumes_as_its_user(provisioned: str) -> None:
    """make_broker connects as the service's user, and its pull consumers fetch into the
    service's own inboxes (FastStream's default `_INBOX.` would be refused)."""
    broker = make_broker(settings(provisioned, "publisher"), "publisher")
    received: asyncio.Queue[bytes] = asyncio.Queue()

    @broker.subscriber(
        "events.images.*.image.*",
        stream=jstream(EVENTS_STREAM),
        durable="publisher-image-events",
        pull_sub=PullSub(timeout=0.5),
    )
    async def follow(body: dict[str, str]) -> None:
        await received.put(json.dumps(body).encode())

    await broker.start()
    try:
        async with session(provisioned, ADMIN) as admin:
            await admin.js.publish(f"events.images.{OWNER}.image.stored", b'{"image": "x"}')
        assert await asyncio.wait_for(received.get(), 5) == b'{"image": "x"}'
    finally:
        await broker.stop()


def _certificates(directory: Path) -> tuple[Path, Path, Path]:
    """A CA and a certificate for 127.0.0.1 it signed: (ca, cert, key) PEM files."""
    now = datetime.datetime.now(datetime.UTC)

    def build(subject: str, issuer: x509.Name, key: ec.EllipticCurvePrivateKey) -> x509.Builder:
        return (
            x509.CertificateBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, subject)]))
            .issuer_name(issuer)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(minutes=1))
            .not_valid_after(now + datetime.timedelta(hours=1))
        )

    ca_key = ec.generate_private_key(ec.SECP256R1())
    server_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "imagetron test CA")])
    ca = (
        build("imagetron test CA", ca_name, ca_key)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(ca_key, hashes.SHA256())
    )
    server = (
        build("127.0.0.1", ca_name, server_key)
        .add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
            critical=False,
        )
        .sign(ca_key, hashes.SHA256())
    )
    paths = directory / "ca.pem", directory / "server.pem", directory / "server-key.pem"
    paths[0].write_bytes(ca.public_bytes(serialization.Encoding.PEM))
    paths[1].write_bytes(server.public_bytes(serialization.Encoding.PEM))
    paths[2].write_bytes(
        server_key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return paths


async def test_a_service_reaches_nats_over_tls_with_its_ca(tmp_path: Path) -> None:
    ca, cert, key = _certificates(tmp_path)
    config = authorization_config(PASSWORDS, users=EVERYONE) + (
        f"tls {{\n  cert_file: {json.dumps(str(cert))}\n  key_file: {json.dumps(str(key))}\n}}\n"
    )
    server = NatsServer(tmp_path / "nats", config=config)
    await asyncio.to_thread(server.start)
    try:
        url = f"tls://{server.host}:{server.port}"
        trusted = settings(url, "gateway").model_copy(update={"nats_ca_file": str(ca)})
        broker = make_broker(trusted, "gateway")
        await broker.start()
        try:
            assert await broker.ping(timeout=2)
        finally:
            await broker.stop()
        # Without our CA the server's certificate is not trusted.
        with pytest.raises(Exception, match="CERTIFICATE_VERIFY_FAILED"):
            await nats.connect(
                url,
                allow_reconnect=False,
                max_reconnect_attempts=0,
                **nats_connect_options(settings(url, "gateway"), "gateway"),
            )
    finally:
        await asyncio.to_thread(server.stop)
