"""An `EventFeed` on the EVENTS stream that holds thousands of connections per process.

Live delivery: one ordered consumer on `events.>` per process (`LiveHub`), fanned out in
memory to the connections of each owner; it starts after the last event the stream's leader
holds, and a consumer that nats-py recreates (a node died, heartbeats were missed) goes on
from the last event received, never from the stream's start. Resuming (`Last-Event-ID`): a
short-lived ordered consumer filtered to the owner replays from the stream until it has
caught up, then the connection continues from the hub. The connection registers with the
hub *before* the replay starts and drops anything at or below the last sequence it sent, so
the hand-over has no gap and no duplicate. A connection that cannot keep up (its queue
overflows) is not dropped: it falls back to replaying from its last sequence, then rejoins
the live flow.

In a NATS cluster the stream's replicas need not agree at a given moment: one that was
down, or stalled, has less than the leader committed, yet it answers stream info while the
stream has no leader (its own state), and a replay consumer (one replica, placed at random)
reads that replica's store. So what a replay must cover is the leader's: up to the last
sequence its stream info gives (or, after an overflow, the last the hub handed out), and
what the consumer has not got of that range the leader is asked for, message by message.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import deque
from collections.abc import AsyncGenerator, AsyncIterator, Awaitable, Callable
from uuid import UUID

from nats.aio.client import Client
from nats.aio.msg import Msg
from nats.aio.subscription import Subscription
from nats.js import JetStreamContext
from nats.js.api import ConsumerConfig, DeliverPolicy, StreamState
from nats.js.client import DEFAULT_JS_SUB_PENDING_BYTES_LIMIT, DEFAULT_JS_SUB_PENDING_MSGS_LIMIT
from nats.js.errors import NotFoundError

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

#: How long a resume waits for the EVENTS stream to have a leader (one is elected within
#: seconds of the last one's death) before it gives up; the browser then reconnects.
LEADER_WAIT_SECONDS = 15.0


class StreamLeaderless(Exception):
    """The EVENTS stream has had no leader for `LEADER_WAIT_SECONDS`: nobody can tell
    what it holds, so the connection ends (the browser comes back with its last id)."""


class Listener:
    """One connection's place in the live flow: the events queued for it (at most `limit`),
    a heartbeat when asked, or the overflow marker.

    A deque and one future while it waits, not an `asyncio.Queue` (three deques and an
    Event, about 3 KB each): a notifier holds ten thousand of these."""

    __slots__ = ("_items", "_waiter", "heartbeat_turn", "limit", "overflowed", "owner_id")

    def __init__(self, owner_id: UUID, limit: int) -> None:
        self.owner_id = owner_id
        self.limit = limit
        self.overflowed = False
        #: Which of the hub's heartbeat turns this connection is beaten in.
        self.heartbeat_turn = 0
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


#: In how many turns the connections are beaten, one turn every heartbeat interval / TURNS.
HEARTBEAT_TURNS = 30


class HeartbeatTurns:
    """The connections in `turns` groups, joined in rotation; each tick beats one group, so
    every connection gets a heartbeat once every `turns` ticks while the work is spread over
    the interval. Beating ten thousand connections in the same instant (one timer for all, as
    before) queued every event behind ten thousand writes: with 10,000 streams, half a
    second of the notifier's CPU every 15 s, which made the delivery p99."""

    def __init__(self, turns: int = HEARTBEAT_TURNS) -> None:
        self._groups: list[set[Listener]] = [set() for _ in range(turns)]
        self._joining = 0  # the group the next connection joins
        self._due = 0  # the group the next tick beats

    def add(self, listener: Listener) -> None:
        listener.heartbeat_turn = self._joining
        self._groups[self._joining].add(listener)
        self._joining = (self._joining + 1) % len(self._groups)

    def discard(self, listener: Listener) -> None:
        self._groups[listener.heartbeat_turn].discard(listener)

    def tick(self) -> None:
        """Beat the group whose turn it is."""
        for listener in self._groups[self._due]:
            listener.beat()
        self._due = (self._due + 1) % len(self._groups)


class LiveHub:
    def __init__(
        self, nats: Client, queue_size: int = 1000, heartbeat_seconds: float = 15.0
    ) -> None:
        self._js = nats.jetstream()
        self._queue_size = queue_size
        self._heartbeat_seconds = heartbeat_seconds
        self._listeners: dict[UUID, set[Listener]] = {}
        self._turns = HeartbeatTurns()
        self._sub: Subscription | None = None
        self._heartbeats: asyncio.Task[None] | None = None
        #: The stream sequence of the last event handed to the listeners (0: none yet).
        self.position = 0

    async def start(self) -> None:
        # From the sequence after the leader's last, not `DeliverPolicy.NEW`: a consumer
        # recreated after a reset must go on from a sequence (see `_ordered_consumer`).
        state = await leader_state(self._js)
        self.position = state.last_seq
        self._sub = await _ordered_consumer(
            self._js,
            "events.>",
            state.last_seq + 1,
            cb=self._on_message,
            pending_msgs_limit=-1,
            pending_bytes_limit=-1,
        )
        self._heartbeats = asyncio.create_task(self._beat())

    async def _beat(self) -> None:
        # One timer for the whole process (a per-connection `wait_for` around every queue
        # read costs a task and a timer per event per connection), ticking once per turn.
        loop = asyncio.get_running_loop()
        tick = self._heartbeat_seconds / HEARTBEAT_TURNS
        due = loop.time()
        while True:
            # On time on average (the ticks' own work is not added to the interval), but
            # after a stall (a stopped process) the turns go on from now, not in a burst.
            due = max(due + tick, loop.time())
            await asyncio.sleep(due - loop.time())
            self._turns.tick()

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
        self._turns.add(listener)
        return listener

    def unregister(self, listener: Listener) -> None:
        self._turns.discard(listener)
        listeners = self._listeners.get(listener.owner_id)
        if listeners is not None:
            listeners.discard(listener)
            if not listeners:
                del self._listeners[listener.owner_id]

    async def _on_message(self, msg: Msg) -> None:
        self.position = msg.metadata.sequence.stream
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
                # Read after registering: whatever the hub hands out from now on is past
                # what the leader holds now, the rest is the replay's.
                state = await leader_state(self._js)
                # Older than what is kept, or newer than anything ever stored (a stream
                # that was recreated, or an id the client made up): either way the client
                # must reload, and live events must not be held back until that id.
                if not state.first_seq <= after_seq + 1 <= state.last_seq + 1:
                    yield FeedReset(requested_after=after_seq, oldest_kept=state.first_seq)
                    last = None
                else:
                    async for event in self._replay(owner_id, after_seq, state.last_seq):
                        last = event.seq
                        yield event
            while True:
                item = await listener.get()
                if isinstance(item, Heartbeat):
                    yield item
                    continue
                if isinstance(item, _Overflow):
                    # Catch up from the stream: everything after the last event sent, up to
                    # the last the hub handed out (it queues what comes after).
                    listener.overflowed = False
                    if last is not None:
                        async for event in self._replay(owner_id, last, self._hub.position):
                            last = event.seq
                            yield event
                    continue
                if last is not None and item.seq <= last:
                    continue  # already sent by the replay
                last = item.seq
                yield item
        finally:
            self._hub.unregister(listener)

    async def _replay(
        self, owner_id: UUID, after_seq: int, through_seq: int
    ) -> AsyncIterator[FeedEvent]:
        """The owner's events after `after_seq`, in order, and at least all of them up to
        `through_seq` (a sequence the leader has)."""
        last = after_seq
        async for event in self._replay_from_consumer(owner_id, after_seq, through_seq):
            last = event.seq
            yield event
        # The consumer's replica may lack the end of the range: the leader has it (its
        # message get answers nothing while the stream has no leader, rather than guess).
        subject = f"events.*.{owner_id}.>"
        while last < through_seq:
            try:
                msg = await self._js.get_msg(
                    EVENTS_STREAM.name, seq=last + 1, subject=subject, next=True
                )
            except NotFoundError:
                return  # nothing of this owner after `last`
            if msg.seq is None or msg.subject is None or msg.seq > through_seq:
                return  # past the range: the hub has it
            _, event_type = parse_event_subject(msg.subject)
            last = msg.seq
            yield FeedEvent.of(last, owner_id, event_type, (msg.data or b"").decode())

    async def _replay_from_consumer(
        self, owner_id: UUID, after_seq: int, through_seq: int
    ) -> AsyncIterator[FeedEvent]:
        """The owner's events after `after_seq` that the replica the consumer is placed on
        has now (up to `through_seq` or a little past it)."""
        sub = await _ordered_consumer(
            self._js, f"events.*.{owner_id}.>", after_seq + 1, inactive_threshold=30.0
        )
        try:
            info = await sub.consumer_info()
            delivered = info.delivered.consumer_seq if info.delivered else 0
            if info.num_pending == 0 and not delivered:
                return  # nothing of this owner after `after_seq` on that replica
            async for msg in sub.messages:
                _, event_type = parse_event_subject(msg.subject)
                seq = msg.metadata.sequence.stream
                yield FeedEvent.of(seq, owner_id, event_type, msg.data.decode())
                if msg.metadata.num_pending == 0 or seq >= through_seq:
                    return
        finally:
            await sub.unsubscribe()


async def leader_state(js: JetStreamContext) -> StreamState:
    """The EVENTS stream's state as its leader knows it. While the stream has no leader,
    its replicas answer with their own state, which may lag (no leader named)."""
    until = time.monotonic() + LEADER_WAIT_SECONDS
    while True:
        info = await js.stream_info(EVENTS_STREAM.name)
        if info.cluster is None or info.cluster.leader:
            return info.state
        if time.monotonic() > until:
            raise StreamLeaderless(
                f"the {EVENTS_STREAM.name} stream has had no leader for {LEADER_WAIT_SECONDS:.0f} s"
            )
        await asyncio.sleep(0.25)


async def _ordered_consumer(
    js: JetStreamContext,
    subject: str,
    start_seq: int,
    *,
    cb: Callable[[Msg], Awaitable[None]] | None = None,
    inactive_threshold: float | None = None,
    pending_msgs_limit: int = DEFAULT_JS_SUB_PENDING_MSGS_LIMIT,
    pending_bytes_limit: int = DEFAULT_JS_SUB_PENDING_BYTES_LIMIT,
) -> JetStreamContext.PushSubscription:
    """An ordered consumer of `subject` in EVENTS from stream sequence `start_seq` on.

    When an ordered consumer is lost (its node died, two heartbeats missed, a gap in its
    sequence) nats-py creates a new one from the stream sequence after the last message
    it received (`_JSI._sseq + 1`), and that is 0 until the first message: the new one
    would start from the stream's first event and deliver a week of old events as new. So
    its notion of the last message received starts just before `start_seq`.
    (nats-py 2.16 `JetStreamContext._JSI.reset_ordered_consumer`; a test restarts the
    server under a fresh hub.)"""
    sub = await js.subscribe(
        subject,
        stream=EVENTS_STREAM.name,
        ordered_consumer=True,
        deliver_policy=DeliverPolicy.BY_START_SEQUENCE,
        config=ConsumerConfig(opt_start_seq=start_seq, inactive_threshold=inactive_threshold),
        idle_heartbeat=5.0,
        cb=cb,
        pending_msgs_limit=pending_msgs_limit,
        pending_bytes_limit=pending_bytes_limit,
    )
    # Nothing was received yet: `subscribe` has not yielded to the reader since it
    # subscribed to the consumer's deliveries.
    tracking = sub._sub._jsi
    if tracking is None:
        raise RuntimeError("nats-py keeps no ordered-consumer state on the subscription")
    tracking._sseq = max(tracking._sseq, start_seq - 1)
    return sub
