"""The feed on a real three-node NATS cluster whose EVENTS stream keeps three replicas,
when the stream's leader dies and the replica the notifier talks to is behind.

A replica that missed what the leader and the other replica committed (here: stopped
with SIGSTOP while they did) still answers for the stream while no leader is elected, and
a replay consumer placed on it reads its store: neither may decide what a client that
resumes with `Last-Event-ID` gets. The client must get every event after its id, in
order, and no reset."""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import json
import os
import signal
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime

import nats
import pytest
from nats.aio.client import Client

from imagetron.servers import NatsCluster, NatsServer
from imagetron_contracts.streams import EVENTS_STREAM
from imagetron_notifier.adapters.jetstream_feed import JetStreamFeed, LiveHub
from imagetron_notifier.app.feed import FeedEvent, FeedReset
from imagetron_platform.nats_connection import provision_streams

pytestmark = pytest.mark.integration

#: How long a node's JetStream must have run before it calls a stream leaderless (and then
#: answers for it with its own state): the server's startup threshold and lost-quorum
#: interval, both 10 s in NATS 2.15.
LEADERLESS_AFTER_SECONDS = 10.5


@pytest.fixture
def cluster(tmp_path) -> Iterator[list[NatsServer]]:
    nodes = NatsCluster(tmp_path / "nats", 3).nodes
    try:
        # Started together: each node waits for the others' routes to find a meta leader.
        with concurrent.futures.ThreadPoolExecutor(len(nodes)) as pool:
            for started in [pool.submit(node.start) for node in nodes]:
                started.result()
        yield nodes
    finally:
        for node in nodes:
            if node.pid is not None:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(node.pid, signal.SIGCONT)
            node.stop()


@contextlib.asynccontextmanager
async def connected(*nodes: NatsServer) -> AsyncIterator[Client]:
    nc = await nats.connect(servers=[n.url for n in nodes], connect_timeout=5)
    try:
        yield nc
    finally:
        with contextlib.suppress(Exception):
            await nc.close()


async def _live_hub(nc: Client) -> LiveHub:
    """A started hub. Its consumer is created through the meta leader, which on a loaded
    machine may not answer within the client's 5 s the first time."""
    deadline = time.monotonic() + 60
    while True:
        hub = LiveHub(nc)
        try:
            await hub.start()
            return hub
        except nats.errors.TimeoutError:
            if time.monotonic() > deadline:
                raise


async def _publish(nc: Client, owner: uuid.UUID, n: int) -> list[int]:
    js = nc.jetstream()
    seqs = []
    for i in range(n):
        payload = {"id": str(uuid.uuid4()), "occurred_at": datetime.now(UTC).isoformat(), "n": i}
        ack = await js.publish(
            f"events.images.{owner}.task.progress", json.dumps(payload).encode(), stream="EVENTS"
        )
        seqs.append(ack.seq)
    return seqs


async def _all_current(nc: Client) -> None:
    """Until every replica of EVENTS has everything its leader has."""
    js = nc.jetstream()
    while True:
        try:
            info = await js.stream_info(EVENTS_STREAM.name)
        except nats.errors.Error:  # the new stream has no leader yet
            await asyncio.sleep(0.1)
            continue
        replicas = (info.cluster.replicas or []) if info.cluster and info.cluster.leader else []
        if len(replicas) == 2 and all(r.current and not r.lag for r in replicas):
            return
        await asyncio.sleep(0.1)


async def _events_seen_everywhere(
    cluster: list[NatsServer], owner: uuid.UUID, count: int
) -> tuple[NatsServer, NatsServer, NatsServer, list[int]]:
    """EVENTS with three replicas, and `count` events of `owner` that each replica has:
    the leader's node, the two others', and the events' sequences."""
    async with connected(*cluster) as admin:
        await provision_streams(admin.jetstream(), replicas=3)
        await _all_current(admin)
        info = await admin.jetstream().stream_info(EVENTS_STREAM.name)
        assert info.cluster is not None
        leader = next(n for n in cluster if n.server_name == info.cluster.leader)
        one, other = (n for n in cluster if n is not leader)
        seqs = await _publish(admin, owner, count)
        await _all_current(admin)
    return leader, one, other, seqs


async def _resume(
    feed: JetStreamFeed, owner: uuid.UUID, after: int, until: int, within: float
) -> tuple[list[int], list[FeedReset]]:
    """A browser's EventSource: follows from `after`, and whenever the stream breaks
    (the feed raises: no cluster, a timeout) follows again from the last id it got, until it
    has an event at or past `until` (or `within` seconds have passed)."""
    seqs: list[int] = []
    resets: list[FeedReset] = []

    async def follow() -> None:
        while True:
            try:
                last = seqs[-1] if seqs else after
                async with contextlib.aclosing(feed.follow(owner, last)) as items:
                    async for item in items:
                        if isinstance(item, FeedReset):
                            resets.append(item)
                        elif isinstance(item, FeedEvent):
                            seqs.append(item.seq)
                            if item.seq >= until:
                                return
            except Exception:  # the stream broke: the browser reconnects
                await asyncio.sleep(0.2)

    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(follow(), within)
    return seqs, resets


async def test_a_resume_while_the_leader_is_dead_and_this_replica_behind_misses_nothing(
    cluster: list[NatsServer],
):
    started = time.monotonic()
    owner = uuid.uuid4()
    leader, behind, current, seen = await _events_seen_everywhere(cluster, owner, 3)

    # The notifier talks to the replica that will fall behind, and follows live from now.
    async with connected(behind) as notifier, connected(current) as publisher:
        hub = await _live_hub(notifier)
        feed = JetStreamFeed(notifier, hub)
        try:
            assert behind.pid is not None
            assert leader.pid is not None
            os.kill(behind.pid, signal.SIGSTOP)
            # Committed by the leader and the current replica: the browser saw the first
            # two, then lost its connection.
            missed = await _publish(publisher, owner, 5)
            last_seen = missed[1]
            await asyncio.sleep(max(0.0, LEADERLESS_AFTER_SECONDS - (time.monotonic() - started)))
            os.kill(leader.pid, signal.SIGKILL)
            os.kill(behind.pid, signal.SIGCONT)

            seqs, resets = await _resume(feed, owner, last_seen, missed[-1], within=60)
            assert resets == [], "a lagging replica's view is no reason to reset"
            assert seqs == missed[2:], (seen, missed, seqs)

            # And live events still follow, after the hand-over.
            later = await _publish(publisher, owner, 2)
            more, resets = await _resume(feed, owner, missed[-1], later[-1], within=60)
            assert (more, resets) == (later, [])
        finally:
            await hub.stop()


async def _fill(nc: Client, count: int, size: int) -> None:
    """`count` events of other owners, `size` bytes each, published many at a time."""
    js = nc.jetstream()
    body = json.dumps({"id": "filler", "pad": "x" * size}).encode()
    for start in range(0, count, 200):
        await asyncio.gather(
            *(
                js.publish(f"events.images.{uuid.uuid4()}.task.progress", body, stream="EVENTS")
                for _ in range(min(200, count - start))
            )
        )


async def test_replays_placed_on_a_replica_still_catching_up_miss_nothing(
    cluster: list[NatsServer],
):
    """A replay consumer has one replica, chosen at random among the stream's: eight replays
    at once, right after a replica that missed 25 MB comes back, find it catching up."""
    owner = uuid.uuid4()
    leader, behind, _, [seen] = await _events_seen_everywhere(cluster, owner, 1)

    async with connected(leader) as notifier:
        hub = await _live_hub(notifier)
        feed = JetStreamFeed(notifier, hub)
        try:
            assert behind.pid is not None
            os.kill(behind.pid, signal.SIGSTOP)
            await _fill(notifier, 3000, 8192)
            missed = await _publish(notifier, owner, 3)
            os.kill(behind.pid, signal.SIGCONT)
            resumed = await asyncio.gather(
                *(_resume(feed, owner, seen, missed[-1], within=60) for _ in range(8))
            )
            assert resumed == [(missed, [])] * 8
        finally:
            await hub.stop()
