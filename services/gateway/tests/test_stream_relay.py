"""A browser stream's relay (`until_set`): it ends when its frames end or the key is revoked,
and however it ends it leaves no read behind."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

from imagetron_gateway.entrypoints.http.events import until_set


async def _chunks(gate: asyncio.Event, read: list[str]) -> AsyncIterator[bytes]:
    yield b"first"
    try:
        await gate.wait()
    except asyncio.CancelledError:
        read.append("cancelled")
        raise
    read.append("finished")
    yield b"second"


async def test_passes_chunks_until_they_end() -> None:
    gate = asyncio.Event()
    gate.set()
    got = [c async for c in until_set(asyncio.Event(), _chunks(gate, []))]
    assert got == [b"first", b"second"]


async def test_ends_at_once_when_revoked_while_a_chunk_is_awaited() -> None:
    revoked, gate, read = asyncio.Event(), asyncio.Event(), []
    relay = until_set(revoked, _chunks(gate, read))
    assert await anext(relay) == b"first"
    revoked.set()
    assert [c async for c in relay] == []
    await asyncio.sleep(0)
    assert read == ["cancelled"]


async def test_a_relay_closed_while_awaiting_cancels_the_pending_read() -> None:
    """The browser left: the server closes the relay mid-wait; the read it started must not
    outlive it (it would fail unobserved once the upstream is closed)."""
    gate, read = asyncio.Event(), []
    relay = until_set(asyncio.Event(), _chunks(gate, read))
    assert await anext(relay) == b"first"
    pending = asyncio.ensure_future(anext(relay))
    await asyncio.sleep(0.01)
    pending.cancel()
    await asyncio.gather(pending, return_exceptions=True)
    await relay.aclose()
    await asyncio.sleep(0)
    assert read == ["cancelled"]
    gate.set()
    await asyncio.sleep(0.01)
    assert read == ["cancelled"], "the abandoned read went on"


async def test_revoked_between_chunks_ends_without_reading_again() -> None:
    """Set while the previous chunk was being sent: nothing is cancelled, nothing more read."""
    revoked, gate, read = asyncio.Event(), asyncio.Event(), []
    gate.set()
    relay = until_set(revoked, _chunks(gate, read))
    assert await anext(relay) == b"first"
    revoked.set()
    await asyncio.sleep(0.01)  # the watcher sees it while the relay is between chunks
    assert [c async for c in relay] == []
    assert read == []


async def test_a_cancellation_from_elsewhere_is_not_swallowed_after_a_revocation() -> None:
    """The browser left (the server cancels the relaying task) as the key was revoked: the
    relay must not eat the server's cancellation along with its own."""
    revoked, gate, read = asyncio.Event(), asyncio.Event(), []
    relay = until_set(revoked, _chunks(gate, read))
    assert await anext(relay) == b"first"

    async def relaying() -> list[bytes]:
        return [c async for c in relay]

    task = asyncio.ensure_future(relaying())
    await asyncio.sleep(0.01)  # waiting for the second chunk
    revoked.set()
    task.cancel()
    results = await asyncio.gather(task, return_exceptions=True)
    assert isinstance(results[0], asyncio.CancelledError)
    assert read == ["cancelled"]
