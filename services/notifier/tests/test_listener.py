"""A connection's place in the live flow: events in order, one heartbeat when idle, and
past its limit only the overflow marker (the connection then replays from the stream)."""

from __future__ import annotations

import asyncio
import uuid

from imagetron_notifier.adapters.jetstream_feed import HEARTBEAT, OVERFLOW, Listener
from imagetron_notifier.app.feed import FeedEvent

OWNER = uuid.uuid4()


def _event(seq: int) -> FeedEvent:
    return FeedEvent(seq=seq, owner_id=OWNER, type="task.progress", data="{}")


async def test_a_waiting_connection_wakes_for_each_event_in_order():
    listener = Listener(OWNER, limit=10)
    waiting = asyncio.create_task(listener.get())
    await asyncio.sleep(0)
    assert not waiting.done()
    listener.push(_event(1))
    listener.push(_event(2))
    assert await asyncio.wait_for(waiting, 1) == _event(1)
    assert await asyncio.wait_for(listener.get(), 1) == _event(2)


async def test_a_heartbeat_only_when_nothing_else_is_queued():
    listener = Listener(OWNER, limit=10)
    listener.push(_event(1))
    listener.beat()
    assert await listener.get() == _event(1)
    listener.beat()
    listener.beat()
    assert await listener.get() is HEARTBEAT
    second = asyncio.create_task(listener.get())  # the second beat found one queued
    await asyncio.sleep(0.01)
    assert not second.done()
    second.cancel()
    await asyncio.gather(second, return_exceptions=True)


async def test_past_its_limit_only_the_overflow_marker_remains():
    listener = Listener(OWNER, limit=3)
    for seq in range(1, 4):
        listener.push(_event(seq))
    assert not listener.overflowed
    listener.push(_event(4))
    listener.push(_event(5))  # ignored: the connection will replay from the stream
    assert listener.overflowed
    assert await asyncio.wait_for(listener.get(), 1) is OVERFLOW
    pending = asyncio.create_task(listener.get())
    await asyncio.sleep(0.01)
    assert not pending.done()
    pending.cancel()
    await asyncio.gather(pending, return_exceptions=True)


async def test_a_cancelled_wait_leaves_the_listener_usable():
    listener = Listener(OWNER, limit=3)
    waiting = asyncio.create_task(listener.get())
    await asyncio.sleep(0)
    waiting.cancel()
    await asyncio.gather(waiting, return_exceptions=True)
    listener.push(_event(7))
    assert await asyncio.wait_for(listener.get(), 1) == _event(7)
