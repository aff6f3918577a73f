"""An `EventFeed` on the EVENTS stream that holds thousands of connections per process.

Live delivery: one ordered consumer on `events.>` per process (`LiveHub`), fanned out in
memory to the connections of each owner. Resuming (`Last-Event-ID`): a short-lived ordered
consumer filtered to the owner replays from the stream until it has caught up, then the
connection continues from the hub. The connection registers with the hub *before* the replay
starts and drops anything at or below the last sequence it sent, so the hand-over has no gap
and no duplicate. A connection that cannot keep up (its queue overflows) is not dropped: it
falls back to replaying from its last sequence, then rejoins the live flow.
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from collections.abc import AsyncGenerator, AsyncIterator
from uuid import UUID

from nats.aio.client import Client
from nats.aio.msg import Msg
from nats.aio.subscription import Subscription
from nats.js.api import ConsumerConfig, DeliverPolicy

from imagetron_contracts.streams import EVENTS_STREAM
from imagetron_notifier.app.feed import (
    FeedEvent,
    FeedItem,
    FeedReset,
    Heartbeat,
    parse_event_subject,
)

log = logging.getLogger(__name__)


class _Overflow:
    """Queued in place of live events a slow connection had no room for."""


OVERFLOW = _Overflow()
HEARTBEAT = Heartbeat()


class Listener:
    """One connection's place in the live flow: the events queued for it (at most `limit`),
    a heartbeat when asked, or the overflow marker.

    A deque and one future while it waits, not an `asyncio.Queue` (three deques and an
    Event, about 3 KB each): a notifier holds ten thousand of these."""

    __slots__ = ("_items", "_waiter", "limit", "overflowed", "owner_id")

    def __init__(self, owner_id: UUID, limit: int) -> None:
        self.owner_id = owner_id
        self.limit = limit
        self.overflowed = False
        self._items: deque[FeedEvent | _Overflow | Heartbeat] = deque()
        self._waiter: asyncio.Future[None] | None = None

    def beat(self) -> None:
        """Ask the connection to write a heartbeat, unless it has plenty to write anyway."""
        if not self._items:
            self._put(HEARTBEAT)

    def push(self, event: FeedEvent) -> None:
        if self.overflowed:
            return
        if len(self._items) >= self.limit:
            # Drop everything queued (all of it is newer than what was sent) and leave only
            # the marker: the connection replays from its last sent event, in order.
            self.overflowed = True
            self._items.clear()
            self._put(OVERFLOW)
            return
        self._put(event)

    def _put(self, item: FeedEvent | _Overflow | Heartbeat) -> None:
        self._items.append(item)
        if self._waiter is not None and not self._waiter.done():
            self._waiter.set_result(None)

    async def get(self) -> FeedEvent | _Overflow | Heartbeat:
        while not self._items:
            self._waiter = asyncio.get_running_loop().create_future()
            try:
                await self._waiter
            finally:
                self._waiter = None
        return self._items.popleft()


class LiveHub:
    def __init__(
        self, nats: Client, queue_size: int = 1000, heartbeat_seconds: float = 15.0
    ) -> None:
        self._js = nats.jetstream()
        self._queue_size = queue_size
        self._heartbeat_seconds = heartbeat_seconds
        self._listeners: dict[UUID, set[Listener]] = {}
        self._sub: Subscription | None = None
        self._heartbeats: asyncio.Task[None] | None = None

    async def start(self) -> None:
        self._sub = await self._js.subscribe(
            "events.>",
            stream=EVENTS_STREAM.name,
            ordered_consumer=True,
            deliver_policy=DeliverPolicy.NEW,
            idle_heartbeat=5.0,
            cb=self._on_message,
            pending_msgs_limit=-1,
            pending_bytes_limit=-1,
        )
        self._heartbeats = asyncio.create_task(self._beat())

    async def _beat(self) -> None:
        # One timer for the whole process: a per-connection `wait_for` around every queue
        # read costs a task and a timer per event per connection.
        while True:
            await asyncio.sleep(self._heartbeat_seconds)
            for listeners in list(self._listeners.values()):
                for listener in listeners:
                    listener.beat()

    async def stop(self) -> None:
        if self._heartbeats is not None:
            self._heartbeats.cancel()
            await asyncio.gather(self._heartbeats, return_exceptions=True)
            self._heartbeats = None
        if self._sub is not None:
            await self._sub.unsubscribe()
            self._sub = None

    @property
    def connections(self) -> int:
        return sum(len(s) for s in self._listeners.values())

    def register(self, owner_id: UUID) -> Listener:
        listener = Listener(owner_id, self._queue_size)
        self._listeners.setdefault(owner_id, set()).add(listener)
        return listener

    def unregister(self, listener: Listener) -> None:
        listeners = self._listeners.get(listener.owner_id)
        if listeners is not None:
            listeners.discard(listener)
            if not listeners:
                del self._listeners[listener.owner_id]

    async def _on_message(self, msg: Msg) -> None:
        try:
            owner_id, event_type = parse_event_subject(msg.subject)
        except ValueError:
            log.warning("ignoring message on unexpected subject %s", msg.subject)
            return
        listeners = self._listeners.get(owner_id)
        if not listeners:
            return
        event = FeedEvent.of(msg.metadata.sequence.stream, owner_id, event_type, msg.data.decode())
        for listener in listeners:
            listener.push(event)


class JetStreamFeed:
    def __init__(self, nats: Client, hub: LiveHub) -> None:
        self._js = nats.jetstream()
        self._hub = hub

    async def follow(self, owner_id: UUID, after_seq: int | None) -> AsyncGenerator[FeedItem, None]:
        listener = self._hub.register(owner_id)
        try:
            last = after_seq
            if after_seq is not None:
                info = await self._js.stream_info(EVENTS_STREAM.name)
                # Older than what is kept, or newer than anything ever stored (a stream
                # that was recreated, or an id the client made up): either way the client
                # must reload, and live events must not be held back until that id.
                if not info.state.first_seq <= after_seq + 1 <= info.state.last_seq + 1:
                    yield FeedReset(requested_after=after_seq, oldest_kept=info.state.first_seq)
                    last = None
                else:
                    async for event in self._replay(owner_id, after_seq):
                        last = event.seq
                        yield event
            while True:
                item = await listener.get()
                if isinstance(item, Heartbeat):
                    yield item
                    continue
                if isinstance(item, _Overflow):
                    # Catch up from the stream: everything after the last event sent.
                    listener.overflowed = False
                    if last is not None:
                        async for event in self._replay(owner_id, last):
                            last = event.seq
                            yield event
                    continue
                if last is not None and item.seq <= last:
                    continue  # already sent by the replay
                last = item.seq
                yield item
        finally:
            self._hub.unregister(listener)

    async def _replay(self, owner_id: UUID, after_seq: int) -> AsyncIterator[FeedEvent]:
        """The owner's events after `after_seq` that are in the stream now."""
        sub = await self._js.subscribe(
            f"events.*.{owner_id}.>",
            stream=EVENTS_STREAM.name,
            ordered_consumer=True,
            deliver_policy=DeliverPolicy.BY_START_SEQUENCE,
            config=ConsumerConfig(opt_start_seq=after_seq + 1, inactive_threshold=30.0),
            idle_heartbeat=5.0,
        )
        try:
            info = await sub.consumer_info()
            delivered = info.delivered.consumer_seq if info.delivered else 0
            if info.num_pending == 0 and not delivered:
                return  # nothing of this owner after `after_seq`
            async for msg in sub.messages:
                _, event_type = parse_event_subject(msg.subject)
                yield FeedEvent.of(
                    msg.metadata.sequence.stream, owner_id, event_type, msg.data.decode()
                )
                if msg.metadata.num_pending == 0:
                    return
        finally:
            await sub.unsubscribe()
