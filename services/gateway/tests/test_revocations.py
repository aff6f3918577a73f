"""Key revocations between replicas, on a real NATS server: an announcement ends the
replica's streams of that key and evicts it from the key cache; a malformed one is
ignored without stopping the listener; an announcement that cannot be sent does not undo
the (committed) revocation."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import uuid

import nats
import pytest
from faststream.nats import NatsBroker

from imagetron_gateway.adapters.revocations import (
    NatsKeyRevocations,
    OpenStreams,
    StreamsFull,
    listen_for_revocations,
)
from imagetron_gateway.app.identity import Authenticator
from imagetron_gateway.domain.identity import RevokedKey
from imagetron_platform.events_tokens import KEY_REVOKED_SUBJECT

pytestmark = pytest.mark.integration


class Stream:
    """A stream `OpenStreams` can revoke: `is_set()` once it was."""

    def __init__(self) -> None:
        self.revoked = asyncio.Event()

    def revoke(self) -> None:
        self.revoked.set()

    def is_set(self) -> bool:
        return self.revoked.is_set()


class ForgettingAuthenticator(Authenticator):
    def __init__(self) -> None:
        super().__init__(lambda: None, cache_seconds=0)  # type: ignore[arg-type,return-value]
        self.forgotten: list[uuid.UUID] = []

    def forget(self, key_id: uuid.UUID) -> None:
        self.forgotten.append(key_id)


async def test_a_revocation_ends_the_keys_streams_and_a_malformed_one_is_ignored(nats_url, caplog):
    broker = NatsBroker(nats_url)
    await broker.connect()
    publisher = await nats.connect(nats_url)
    streams = OpenStreams()
    authenticator = ForgettingAuthenticator()
    revoked_key, other_key = uuid.uuid4(), uuid.uuid4()
    ended, kept, keyless = Stream(), Stream(), Stream()
    streams.open(revoked_key, ended)
    streams.open(other_key, kept)
    streams.open(None, keyless)
    listener = asyncio.create_task(listen_for_revocations(broker, authenticator, streams))
    try:
        await asyncio.sleep(0.2)  # subscribed
        await publisher.flush()
        with caplog.at_level(logging.WARNING):
            for malformed in (b"not json", b'{"user_id": "x"}', b'{"key_id": "not-a-uuid"}'):
                await publisher.publish(KEY_REVOKED_SUBJECT, malformed)
            payload = {"key_id": str(revoked_key), "user_id": str(uuid.uuid4())}
            await publisher.publish(KEY_REVOKED_SUBJECT, json.dumps(payload).encode())
            await publisher.flush()
            await asyncio.wait_for(ended.revoked.wait(), timeout=10)
        assert authenticator.forgotten == [revoked_key]
        assert not kept.is_set()
        assert not keyless.is_set()
        assert caplog.text.count("ignored a malformed key revocation") == 3
    finally:
        listener.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await listener
        await publisher.close()
        await broker.stop()
    # Closing streams gives their places back; a key with no streams left is forgotten.
    streams.close(revoked_key, ended)
    streams.close(other_key, kept)
    streams.close(None, keyless)
    streams.limit = 1
    only = Stream()
    streams.open(None, only)
    with pytest.raises(StreamsFull, match="its maximum of 1 event streams"):
        streams.open(None, Stream())
    streams.close(None, only)
    streams.open(None, only)  # its place was given back


async def test_an_announcement_that_cannot_be_sent_is_logged_not_raised(caplog):
    unconnected = NatsBroker("nats://127.0.0.1:1")
    key = RevokedKey(key_id=uuid.uuid4(), user_id=uuid.uuid4())
    with caplog.at_level(logging.WARNING):
        await NatsKeyRevocations(unconnected).announce(key)
    assert f"could not announce the revocation of key {key.key_id}" in caplog.text
