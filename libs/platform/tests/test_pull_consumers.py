"""A lone message reaches a pull consumer as soon as it is stored, whenever in the consumer's
fetch cycle it arrives (`one_message_pulls`). With batched fetches (nats-py `fetch(batch=8)`)
about one in ten waited up to the fetch's timeout, on this same test."""

from __future__ import annotations

import asyncio
import random
import time

import nats
from faststream.nats import JStream, NatsBroker

from imagetron_platform.messaging import one_message_pulls

#: Short fetch cycles, so that many messages arrive near a cycle's end in a short test.
FETCH_TIMEOUT = 0.5
MESSAGES = 40


async def test_a_lone_message_is_handled_at_once_wherever_the_fetch_cycle_is(nats_url) -> None:
    stream, subject = f"PULL{random.randrange(10**9)}", f"pull{random.randrange(10**9)}"
    broker = NatsBroker(nats_url, log_level=40)
    handled: dict[str, float] = {}
    arrived = asyncio.Event()
    pulls = one_message_pulls(timeout=FETCH_TIMEOUT)

    @broker.subscriber(
        f"{subject}.x",
        stream=JStream(stream, subjects=[f"{subject}.>"]),
        durable="lone",
        pull_sub=pulls,
        max_workers=8,
    )
    async def handle(body: str) -> None:
        handled[body] = time.perf_counter()
        arrived.set()

    await broker.start()
    publisher = await nats.connect(nats_url)
    waits = []
    try:
        js = publisher.jetstream()
        for n in range(MESSAGES):
            await asyncio.sleep(random.uniform(0.05, 1.5 * FETCH_TIMEOUT))
            key = f"m{n}"
            arrived.clear()
            sent = time.perf_counter()
            await js.publish(f"{subject}.x", key.encode(), stream=stream)
            async with asyncio.timeout(5):
                await arrived.wait()
            waits.append(handled[key] - sent)
    finally:
        await publisher.close()
        await broker.stop()
    # Scheduling alone takes milliseconds; a stall is a good part of the fetch's timeout.
    stalled = [round(w * 1000) for w in waits if w > 0.4 * FETCH_TIMEOUT]
    assert stalled == [], f"{len(stalled)} of {MESSAGES} lone messages waited (ms): {stalled}"
