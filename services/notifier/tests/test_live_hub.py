"""The live feed against a NATS server of its own, restarted under it.

The hub follows EVENTS with one ordered consumer. When that consumer is lost (its server
restarted or died, heartbeats missed) nats-py creates a new one from the stream sequence
after the last message it received: a hub that had received none yet must not then start
from the stream's first sequence, which would hand a week of old events to every live
connection as if they were new."""

from __future__ import annotations

import asyncio
import bisect
import contextlib
import itertools
import json
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime
from pathlib import Path

import nats
import pytest
from nats.aio.client import Client

from imagetron.servers import NatsServer
from imagetron_contracts.streams import EVENTS_STREAM
from imagetron_notifier.adapters.jetstream_feed import Listener, LiveHub
from imagetron_notifier.app.feed import FeedEvent, Heartbeat
from imagetron_platform.nats_connection import provision_streams

pytestmark = pytest.mark.integration


@pytest.fixture
def server(tmp_path: Path) -> Iterator[NatsServer]:
    with NatsServer(tmp_path / "nats") as server:
        yield server


@contextlib.asynccontextmanager
async def connected(server: NatsServer) -> AsyncIterator[Client]:
    nc = await nats.connect(server.url, max_reconnect_attempts=-1, reconnect_time_wait=0.2)
    try:
        yield nc
    finally:
        with contextlib.suppress(Exception):
            await nc.close()


async def _publish(nc: Client, owner: uuid.UUID, n: int) -> list[int]:
    """`n` events of `owner` (retried while the server comes back); their sequences."""
    js = nc.jetstream()
    seqs: list[int] = []
    deadline = time.monotonic() + 30
    while len(seqs) < n:
        payload = {"id": str(uuid.uuid4()), "occurred_at": datetime.now(UTC).isoformat()}
        try:
            ack = await js.publish(
                f"events.images.{owner}.task.progress",
                json.dumps(payload).encode(),
                stream=EVENTS_STREAM.name,
                timeout=1,
            )
        except nats.errors.Error:
            if time.monotonic() > deadline:
                raise
            await asyncio.sleep(0.2)
            continue
        seqs.append(ack.seq)
    return seqs


async def _events(listener: Listener, within: float) -> list[int]:
    """The sequences of the events the listener gets within `within` seconds."""
    seqs: list[int] = []
    with contextlib.suppress(TimeoutError):
        async with asyncio.timeout(within):
            while True:
                item = await listener.get()
                if isinstance(item, FeedEvent):
                    seqs.append(item.seq)
    return seqs


async def _first_event(listener: Listener, within: float) -> int:
    async with asyncio.timeout(within):
        while True:
            item = await listener.get()
            if isinstance(item, FeedEvent):
                return item.seq


async def test_a_live_feed_reset_before_its_first_event_replays_no_old_event(
    server: NatsServer,
):
    owner = uuid.uuid4()
    async with connected(server) as nc:
        await provision_streams(nc.jetstream())
        old = await _publish(nc, owner, 3)
        hub = LiveHub(nc)
        await hub.start()
        try:
            listener = hub.register(owner)
            # The hub's consumer (in memory, one replica) goes with the server: nats-py
            # notices the missing heartbeats and creates a new one.
            await asyncio.to_thread(server.stop)
            await asyncio.to_thread(server.start)
            new = await _publish(nc, owner, 1)
            # Two missed heartbeats (5 s each) before nats-py recreates the consumer.
            first = await _first_event(listener, within=40)
            assert first == new[0], f"old events {old} replayed as live, first {first}"
            assert await _events(listener, within=1) == []
            # And the feed goes on from there, in order.
            later = await _publish(nc, owner, 2)
            assert await _events(listener, within=2) == later
        finally:
            await hub.stop()


async def test_every_connection_gets_a_heartbeat_each_interval_but_not_all_at_once(
    server: NatsServer,
):
    """Ten thousand connections beaten in the same instant held every event up behind ten
    thousand writes (the SSE benchmark's p99): they are beaten in turns, each still once per
    interval."""
    interval, connections = 0.6, 300
    async with connected(server) as nc:
        await provision_streams(nc.jetstream())
        hub = LiveHub(nc, heartbeat_seconds=interval)
        listeners = [hub.register(uuid.uuid4()) for _ in range(connections)]
        beats: dict[int, list[float]] = {n: [] for n in range(connections)}

        async def follow(n: int, listener: Listener) -> None:
            while True:
                if isinstance(await listener.get(), Heartbeat):
                    beats[n].append(time.monotonic())

        followers = [asyncio.create_task(follow(n, lst)) for n, lst in enumerate(listeners)]
        await hub.start()
        started = time.monotonic()
        try:
            await asyncio.sleep(2.5 * interval)
        finally:
            for follower in followers:
                follower.cancel()
            await asyncio.gather(*followers, return_exceptions=True)
            await hub.stop()
    # Each connection: its first heartbeat within one interval, then one per interval.
    for times in beats.values():
        assert 2 <= len(times) <= 3, times
        assert times[0] - started <= interval + 0.1
        gaps = [b - a for a, b in itertools.pairwise(times)]
        assert all(0.8 * interval <= gap <= 1.2 * interval for gap in gaps), gaps
    # Spread over the interval: no tenth of it holds a fifth of the first heartbeats.
    firsts = sorted(times[0] for times in beats.values())
    crowd = max(bisect.bisect_right(firsts, t + interval / 10) - n for n, t in enumerate(firsts))
    assert crowd <= connections / 5, f"{crowd} of {connections} beaten within {interval / 10} s"
