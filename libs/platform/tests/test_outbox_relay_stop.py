"""The relay stops when cancelled, even if a commit wakes it at that moment (on Python 3.11
`asyncio.wait_for` swallowed that cancellation and shutdown hung)."""

from __future__ import annotations

import asyncio

from imagetron_platform.outbox import OutboxRelay


class IdleRelay(OutboxRelay):
    """Nothing to publish: exercises only the run loop."""

    def __init__(self) -> None:
        self._batch_size = 200
        self._poll_seconds = 60.0
        self._next_prune = float("inf")
        self._next_backlog_check = float("inf")
        self._wakeup = asyncio.Event()

    async def publish_pending(self) -> int:
        return 0


async def test_cancel_racing_a_wake_up_stops_the_relay():
    relay = IdleRelay()
    task = asyncio.create_task(relay.run())
    for _ in range(5):  # let it park in its wait
        await asyncio.sleep(0)
    relay.wake()
    task.cancel()
    done, _ = await asyncio.wait({task}, timeout=2)
    assert task in done
    assert task.cancelled()
