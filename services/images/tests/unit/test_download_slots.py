"""Download slots: limits per owner, per host and in all; a freed slot goes to the owner
holding the fewest; waiting is bounded; a waiter that gives up takes nothing with it."""

from __future__ import annotations

import asyncio
from contextlib import AsyncExitStack

import pytest

from imagetron_images.adapters.download_slots import FairSlots
from imagetron_images.app.ports import DownloadFailed


async def _settle() -> None:
    for _ in range(5):
        await asyncio.sleep(0)


class Holder:
    """Holds a slot until told to let go, and says when it got one."""

    def __init__(self, slots: FairSlots, owner: str, host: str | None = "cdn:443") -> None:
        self.got = asyncio.Event()
        self.release = asyncio.Event()
        self.task = asyncio.create_task(self._run(slots, owner, host))

    async def _run(self, slots: FairSlots, owner: str, host: str | None) -> None:
        async with slots.hold(owner, host):
            self.got.set()
            await self.release.wait()


async def test_limits_per_owner_per_host_and_in_all() -> None:
    slots = FairSlots(total=3, per_owner=2, per_host=2)
    a1, a2, a3 = (Holder(slots, "a") for _ in range(3))
    other_host = Holder(slots, "b", host="elsewhere:443")
    same_host = Holder(slots, "c")
    staged = Holder(slots, "d", host=None)
    await _settle()
    assert [h.got.is_set() for h in (a1, a2, a3)] == [True, True, False]  # per owner
    assert other_host.got.is_set()
    assert not same_host.got.is_set()  # cdn:443 is at its two
    assert not staged.got.is_set()  # three in all
    a1.release.set()
    await _settle()
    # The freed slot may go to a (holding one now), c or d (holding none): of those holding
    # fewest, the one waiting longest, c.
    assert same_host.got.is_set()
    assert not a3.got.is_set()
    assert not staged.got.is_set()
    for holder in (a2, a3, other_host, same_host, staged):
        holder.release.set()
    await asyncio.gather(*(h.task for h in (a1, a2, a3, other_host, same_host, staged)))
    assert slots.held == 0


async def test_a_freed_slot_goes_to_the_owner_holding_fewest() -> None:
    slots = FairSlots(total=2, per_owner=5, per_host=5)
    first, second = Holder(slots, "busy"), Holder(slots, "busy")
    await _settle()
    queued = Holder(slots, "busy")  # waits first
    newcomer = Holder(slots, "new")  # waits second, holds nothing
    await _settle()
    first.release.set()
    await _settle()
    assert newcomer.got.is_set()
    assert not queued.got.is_set()
    for holder in (second, queued, newcomer):
        holder.release.set()
    await asyncio.gather(first.task, second.task, queued.task, newcomer.task)


async def test_waiting_is_bounded_and_gives_nothing_away() -> None:
    slots = FairSlots(total=1, per_owner=1, per_host=1, max_wait_seconds=0.05)
    async with AsyncExitStack() as stack:
        await stack.enter_async_context(slots.hold("a", "cdn:443"))
        with pytest.raises(DownloadFailed, match="No download slot came free"):
            async with slots.hold("b", "cdn:443"):
                pass
        cancelled = asyncio.create_task(stack.enter_async_context(slots.hold("c", None)))
        await _settle()
        cancelled.cancel()
        await asyncio.gather(cancelled, return_exceptions=True)
    assert slots.held == 0
    async with slots.hold("d", "cdn:443"):  # everything was given back
        assert slots.held == 1
