"""Revoked API keys announced over core NATS to every gateway and notifier replica.

Core publish/subscribe, not a stream: a replica acts on it the moment it arrives (forgets
the key, ends the event streams opened with it). A replica that was disconnected at that
moment still refuses the key once its cache entry expires (`api_key_cache_seconds`), since
every cache miss reads the key's state from PostgreSQL."""

from __future__ import annotations

import asyncio
import json
import logging
from collections import defaultdict
from typing import Protocol
from uuid import UUID

from faststream.nats import NatsBroker
from nats.aio.msg import Msg

from imagetron_gateway.app.identity import Authenticator
from imagetron_gateway.domain.identity import RevokedKey
from imagetron_gateway.metrics import EVENT_STREAMS
from imagetron_platform.events_tokens import KEY_REVOKED_SUBJECT

log = logging.getLogger(__name__)


class NatsKeyRevocations:
    def __init__(self, broker: NatsBroker) -> None:
        self._broker = broker

    async def announce(self, revoked: RevokedKey) -> None:
        payload = {"key_id": str(revoked.key_id), "user_id": str(revoked.user_id)}
        try:
            await self._broker.publish(payload, KEY_REVOKED_SUBJECT)
        except Exception:
            # The revocation is committed; replicas that miss this refuse the key once
            # their cache entry expires.
            log.warning("could not announce the revocation of key %s", revoked.key_id)


class Revocable(Protocol):
    def revoke(self) -> None:
        """End at once: the key the stream was opened with is revoked."""


class OpenStreams:
    """The event streams this replica proxies: how many (at most `limit`), how many
    connections they hold (at most `connection_limit`: a browser stream holds its own, and
    each stream from the notifier one, shared by the browser streams it is passed on to),
    and by the API key they were opened with, so that revoking the key ends them."""

    def __init__(self, limit: int | None = None, connection_limit: int | None = None) -> None:
        self.limit = limit
        self.connection_limit = connection_limit
        self._count = 0
        self._connections = 0
        self._by_key: dict[UUID, set[Revocable]] = defaultdict(set)

    def check(self, connections: int = 1) -> None:
        """`StreamsFull` if a new stream holding `connections` (its own, and the notifier's
        if it needs a new one) would pass either limit."""
        if self.limit is not None and self._count >= self.limit:
            raise StreamsFull(f"its maximum of {self.limit} event streams")
        if (
            self.connection_limit is not None
            and self._connections + connections > self.connection_limit
        ):
            raise StreamsFull(
                f"as many event streams as its open-file limit allows "
                f"({self.connection_limit} connections)"
            )

    def open(self, key_id: UUID | None, stream: Revocable, connections: int = 1) -> None:
        """Count `stream` (`check` first), and revoke it when its key is."""
        self.check(connections)
        self._count += 1
        self._connections += connections
        EVENT_STREAMS.inc()
        if key_id is not None:
            self._by_key[key_id].add(stream)

    def close(self, key_id: UUID | None, stream: Revocable) -> None:
        """The stream ended: its place and its own connection are given back."""
        self._count -= 1
        self._connections -= 1
        EVENT_STREAMS.dec()
        if key_id is None:
            return
        streams = self._by_key.get(key_id)
        if streams is not None:
            streams.discard(stream)
            if not streams:
                del self._by_key[key_id]

    def release_connection(self) -> None:
        """A stream from the notifier ended."""
        self._connections -= 1

    def end(self, key_id: UUID) -> None:
        for stream in self._by_key.pop(key_id, ()):
            stream.revoke()


class StreamsFull(Exception):
    def __init__(self, holds: str) -> None:
        super().__init__(f"the gateway holds {holds}")
        #: What the gateway holds: "its maximum of N event streams", ...
        self.holds = holds


async def listen_for_revocations(
    broker: NatsBroker, authenticator: Authenticator, streams: OpenStreams
) -> None:
    """Subscribe this replica (every replica: no queue group) until cancelled."""

    async def revoked(msg: Msg) -> None:
        try:
            key_id = UUID(json.loads(msg.data)["key_id"])
        except (ValueError, KeyError, TypeError):
            log.warning("ignored a malformed key revocation")
            return
        authenticator.forget(key_id)
        streams.end(key_id)

    subscription = await broker.connection.subscribe(KEY_REVOKED_SUBJECT, cb=revoked)
    try:
        await asyncio.Event().wait()
    finally:
        await subscription.unsubscribe()
