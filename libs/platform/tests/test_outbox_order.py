"""Two relays on one outbox (two replicas of a service) publish an aggregate's events in the
order they were written: they take turns, they do not publish batches side by side."""

from __future__ import annotations

import asyncio
import json
import uuid
from typing import Any

import nats
import pytest
from faststream.nats import NatsBroker
from nats.js.api import AckPolicy, ConsumerConfig, DeliverPolicy
from sqlalchemy import MetaData, insert, select, text
from sqlalchemy.ext.asyncio import create_async_engine

from imagetron_platform.clock import utcnow
from imagetron_platform.db import make_session_factory, outbox_table
from imagetron_platform.nats_connection import provision_streams
from imagetron_platform.outbox import OutboxRelay

pytestmark = pytest.mark.integration

EVENTS = 240  # for each of two aggregates, interleaved in the outbox


class StalledRelay(OutboxRelay):
    """A relay on a slow link (a GC pause, a congested network): its messages leave a
    moment after it took its batch, long enough for another relay to overtake them."""

    async def _publish(self, *args: Any, **kwargs: Any) -> None:
        await asyncio.sleep(0.05)
        await super()._publish(*args, **kwargs)


async def test_two_relays_keep_each_aggregates_events_in_order(postgres_dsn, nats_url):
    schema = f"order_{uuid.uuid4().hex[:8]}"
    owner = uuid.uuid4()
    outbox = outbox_table(MetaData(schema=schema))
    engine = create_async_engine(postgres_dsn)
    nc = await nats.connect(nats_url)
    await provision_streams(nc.jetstream())
    brokers = [NatsBroker(nats_url), NatsBroker(nats_url)]
    try:
        async with engine.begin() as conn:
            await conn.execute(text(f'CREATE SCHEMA "{schema}"'))
            await conn.run_sync(outbox.metadata.create_all)
            for n in range(EVENTS):
                aggregate = "a" if n % 2 == 0 else "b"
                await conn.execute(
                    insert(outbox).values(
                        id=uuid.uuid4(),
                        subject=f"events.ordertest.{owner}.{aggregate}.changed",
                        payload={"aggregate": aggregate, "version": n // 2 + 1},
                        created_at=utcnow(),
                    )
                )
        for broker in brokers:
            await broker.connect()
        factory = make_session_factory(engine)
        relays = [
            StalledRelay(factory, outbox, brokers[0], service="test", batch_size=10),
            OutboxRelay(factory, outbox, brokers[1], service="test", batch_size=10),
        ]

        async def drain(relay: OutboxRelay) -> None:
            while True:
                await relay.publish_pending()
                async with factory() as session:
                    left = await session.scalar(
                        select(outbox.c.seq).where(outbox.c.published_at.is_(None)).limit(1)
                    )
                if left is None:
                    return
                await asyncio.sleep(0)

        async with asyncio.timeout(60):
            await asyncio.gather(*(drain(relay) for relay in relays))

        sub = await nc.jetstream().pull_subscribe(
            f"events.ordertest.{owner}.>",
            stream="EVENTS",
            config=ConsumerConfig(
                deliver_policy=DeliverPolicy.ALL, ack_policy=AckPolicy.NONE, inactive_threshold=10
            ),
        )
        seen: dict[str, list[int]] = {"a": [], "b": []}
        while sum(map(len, seen.values())) < EVENTS:
            for msg in await sub.fetch(100, timeout=5):
                event = json.loads(msg.data)
                seen[event["aggregate"]].append(event["version"])
        expected = list(range(1, EVENTS // 2 + 1))
        assert seen == {"a": expected, "b": expected}
    finally:
        for broker in brokers:
            await broker.stop()
        await nc.close()
        async with engine.begin() as conn:
            await conn.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))
        await engine.dispose()
