"""In-progress acks against a real JetStream: a handler that reports progress keeps its
message past a short ack wait; one that falls silent (its process died) loses it to a
redelivery one ack wait later."""

from __future__ import annotations

import asyncio
from uuid import uuid4

import nats
import pytest
from nats.js.api import ConsumerConfig, StreamConfig

from imagetron_platform.messaging import Redelivery, in_progress

pytestmark = pytest.mark.integration

ACK_WAIT = 1.0
WORK = 2.5  # longer than the ack wait


async def _redelivered_while_working(nats_url: str, *, report: bool) -> bool:
    nc = await nats.connect(nats_url)
    name = f"TEST_WPI_{uuid4().hex[:8]}"
    js = nc.jetstream()
    try:
        await js.add_stream(StreamConfig(name=name, subjects=[f"{name}.>"]))
        await js.publish(f"{name}.job", b"work")
        sub = await js.pull_subscribe(
            f"{name}.job", durable="worker", config=ConsumerConfig(ack_wait=ACK_WAIT)
        )
        [msg] = await sub.fetch(1, timeout=2)

        async def work() -> None:
            if report:
                async with in_progress(msg.in_progress, Redelivery(1, ACK_WAIT)):
                    await asyncio.sleep(WORK)
            else:
                await asyncio.sleep(WORK)

        async def another_worker() -> bool:
            try:
                await sub.fetch(1, timeout=WORK - 0.3)
            except TimeoutError:
                return False
            return True

        _, stolen = await asyncio.gather(work(), another_worker())
        await msg.ack()
        return stolen
    finally:
        await js.delete_stream(name)
        await nc.close()


async def test_a_handler_that_reports_progress_keeps_its_message(nats_url: str) -> None:
    assert not await _redelivered_while_working(nats_url, report=True)


async def test_a_silent_handler_loses_its_message_after_the_ack_wait(nats_url: str) -> None:
    assert await _redelivered_while_working(nats_url, report=False)
