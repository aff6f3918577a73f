"""An `EventFeed` on the EVENTS stream: one ordered consumer per connection, filtered to
the owner's subjects, so replay after `Last-Event-ID` and live delivery are one sequence
with no gap and no duplicate, on any notifier replica."""

from __future__ import annotations

from collections.abc import AsyncIterator
from uuid import UUID

from imagetron_contracts.streams import EVENTS_STREAM
from nats.aio.client import Client
from nats.js.api import ConsumerConfig, DeliverPolicy

from imagetron_notifier.app.feed import FeedEvent, FeedItem, FeedReset, event_type_of


class JetStreamFeed:
    def __init__(self, nats: Client) -> None:
        self._js = nats.jetstream()

    async def follow(self, owner_id: UUID, after_seq: int | None) -> AsyncIterator[FeedItem]:
        subject = f"events.*.{owner_id}.>"
        config = ConsumerConfig(inactive_threshold=30.0)
        policy = DeliverPolicy.NEW
        if after_seq is not None:
            info = await self._js.stream_info(EVENTS_STREAM.name)
            first_kept = info.state.first_seq
            if after_seq + 1 < first_kept:
                yield FeedReset(requested_after=after_seq, oldest_kept=first_kept)
            else:
                policy = DeliverPolicy.BY_START_SEQUENCE
                config.opt_start_seq = after_seq + 1
        sub = await self._js.subscribe(
            subject,
            stream=EVENTS_STREAM.name,
            ordered_consumer=True,
            deliver_policy=policy,
            config=config,
            idle_heartbeat=5.0,
        )
        try:
            async for msg in sub.messages:
                yield FeedEvent(
                    seq=msg.metadata.sequence.stream,
                    type=event_type_of(msg.subject),
                    data=msg.data.decode(),
                )
        finally:
            await sub.unsubscribe()
