"""`SharedStreams`: browser streams that want the same events share one stream from the
notifier, and only those: joining live or at the exact id the upstream has reached, never
mid-frame; a slow browser is ended alone; an upstream's end, refusal or failure reaches each
of its streams; the last stream to leave closes it; connections are counted for the limit.

The notifier is faked (our own port, `NotifierStream`): an upstream whose chunks the test
feeds."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator

import httpx
import pytest

from imagetron_gateway.adapters import shared_streams
from imagetron_gateway.adapters.revocations import OpenStreams, StreamsFull
from imagetron_gateway.adapters.shared_streams import (
    Refused,
    Share,
    SharedStreams,
    Tab,
    Unavailable,
)
from imagetron_platform.metrics import REGISTRY

PREAMBLE = b": connected\nretry: 3000\n\n"


def event(seq: int, data: str = "{}") -> bytes:
    return f"id: {seq}\nevent: task.completed\ndata: {data}\n\n".encode()


class FakeUpstream:
    """What `NotifierStreams.open` returns: chunks as the test puts them, then the end."""

    def __init__(self, status_code: int = 200, body: bytes = b"", **headers: str) -> None:
        self.status_code = status_code
        self.headers = httpx.Headers(headers)
        self.body = body
        self.chunks: asyncio.Queue[bytes | Exception | None] = asyncio.Queue()
        self.closed = False

    async def aread(self) -> bytes:
        return self.body

    async def aiter_raw(self) -> AsyncIterator[bytes]:
        while (chunk := await self.chunks.get()) is not None:
            if isinstance(chunk, Exception):
                raise chunk
            yield chunk

    async def aclose(self) -> None:
        self.closed = True


class Notifier:
    """Opens fake upstreams and records what each was opened after."""

    def __init__(self) -> None:
        self.opened: list[tuple[str | None, FakeUpstream]] = []
        self.next: list[FakeUpstream | Exception] = []

    def opener(self, after: str | None):  # type: ignore[no-untyped-def]
        async def open_upstream() -> FakeUpstream:
            await asyncio.sleep(0)
            made = self.next.pop(0) if self.next else FakeUpstream()
            if isinstance(made, Exception):
                raise made
            self.opened.append((after, made))
            return made

        return open_upstream


@pytest.fixture
def notifier() -> Notifier:
    return Notifier()


@pytest.fixture
def streams() -> OpenStreams:
    return OpenStreams()


@pytest.fixture
async def shared(streams: OpenStreams) -> AsyncIterator[SharedStreams]:
    held = SharedStreams(streams)
    yield held
    await held.aclose()


SHARE = Share(uuid.uuid4(), uuid.uuid4(), ())


async def join(
    shared: SharedStreams, notifier: Notifier, after: str | None = None, share: Share = SHARE
) -> Tab:
    tab = shared.join(share, after, notifier.opener(after))
    await asyncio.shield(tab.upstream.ready)
    return tab


class Reader:
    """Reads a tab's frames as a browser stream would, without cancelling a read (that
    would end its generator): what has arrived so far, and whether it ended."""

    def __init__(self, tab: Tab) -> None:
        self.frames = tab.frames()
        self.pending: asyncio.Future[bytes] | None = None
        self.ended = False

    async def received(self) -> bytes:
        got = b""
        while not self.ended:
            if self.pending is None:
                self.pending = asyncio.ensure_future(anext(self.frames))
            done, _ = await asyncio.wait({self.pending}, timeout=0.05)
            if not done:
                break
            read, self.pending = self.pending, None
            try:
                got += read.result()
            except StopAsyncIteration:
                self.ended = True
        return got

    async def close(self) -> None:
        if self.pending is not None:
            self.pending.cancel()
            await asyncio.gather(self.pending, return_exceptions=True)


@pytest.fixture
async def read() -> AsyncIterator[object]:
    """`await read(tab)`: what the tab's browser stream has received since the last call."""
    made: dict[int, Reader] = {}

    async def received(tab: Tab) -> bytes:
        return await made.setdefault(id(tab), Reader(tab)).received()

    received.ended = lambda tab: made[id(tab)].ended  # type: ignore[attr-defined]
    yield received
    for reader in made.values():
        await reader.close()


async def settle() -> None:
    for _ in range(5):
        await asyncio.sleep(0)


async def test_live_streams_of_one_owner_share_one_upstream(shared, notifier, read):
    first = await join(shared, notifier)
    upstream = notifier.opened[0][1]
    upstream.chunks.put_nowait(PREAMBLE + event(1))
    await settle()
    second = await join(shared, notifier)
    upstream.chunks.put_nowait(event(2))
    await settle()
    assert len(notifier.opened) == 1
    assert await read(first) == PREAMBLE + event(1) + event(2)
    # Joined later: the notifier's first frame, then what came after it joined.
    assert await read(second) == PREAMBLE + event(2)


async def test_other_filters_keys_or_owners_do_not_share(shared, notifier):
    await join(shared, notifier)
    for other in (
        Share(SHARE.owner_id, SHARE.key_id, (("types", "task.completed"),)),
        Share(SHARE.owner_id, uuid.uuid4(), ()),
        Share(uuid.uuid4(), SHARE.key_id, ()),
    ):
        await join(shared, notifier, share=other)
    assert len(notifier.opened) == 4


async def test_a_resuming_stream_joins_only_where_the_upstream_stands(shared, notifier, read):
    live = await join(shared, notifier)
    upstream = notifier.opened[0][1]
    upstream.chunks.put_nowait(PREAMBLE + event(7))
    await settle()
    # At 7 exactly: joins, and misses nothing.
    at_seven = await join(shared, notifier, after="7")
    # Behind it (5): must be replayed, so a new upstream after 5.
    behind = await join(shared, notifier, after="5")
    assert [after for after, _ in notifier.opened] == [None, "5"]
    upstream.chunks.put_nowait(event(9))
    await settle()
    assert await read(at_seven) == PREAMBLE + event(9)
    assert await read(live) == PREAMBLE + event(7) + event(9)
    # A new stream without an id joins a live upstream, not the one resuming after 5.
    replaying = notifier.opened[1][1]
    replaying.chunks.put_nowait(PREAMBLE + event(6))
    await settle()
    fresh = await join(shared, notifier)
    assert fresh.upstream is live.upstream
    # Another stream resuming after 5 cannot join it any more (it is at 6); one after 6 can.
    late = await join(shared, notifier, after="6")
    assert late.upstream is behind.upstream
    await join(shared, notifier, after="5")
    assert [after for after, _ in notifier.opened] == [None, "5", "5"]


async def test_after_an_event_without_id_nobody_joins_by_id(shared, notifier):
    """The notifier's `reset` (the id asked for is no longer kept) has no id: where the
    upstream stands is unknown until the next event with one."""
    await join(shared, notifier, after="3")
    upstream = notifier.opened[0][1]
    upstream.chunks.put_nowait(PREAMBLE + b'event: reset\ndata: {"oldest_kept": 10}\n\n')
    await settle()
    await join(shared, notifier, after="3")
    assert [after for after, _ in notifier.opened] == ["3", "3"]
    upstream.chunks.put_nowait(event(12) + b": heartbeat\n\n")
    await settle()
    joined = await join(shared, notifier, after="12")
    assert joined.upstream.position == "12"
    assert len(notifier.opened) == 2


async def test_a_frame_split_across_chunks_is_passed_on_whole(shared, notifier, read):
    first = await join(shared, notifier)
    upstream = notifier.opened[0][1]
    frame = event(4, '{"a": 1}')
    upstream.chunks.put_nowait(PREAMBLE + frame[:10])
    await settle()
    second = await join(shared, notifier)
    upstream.chunks.put_nowait(frame[10:])
    await settle()
    assert await read(first) == PREAMBLE + frame
    assert await read(second) == PREAMBLE + frame
    assert first.upstream.position == "4"


async def test_an_endless_frame_ends_the_upstream(shared, notifier, read, monkeypatch):
    monkeypatch.setattr(shared_streams, "MAX_FRAME_BYTES", 100)
    tab = await join(shared, notifier)
    upstream = notifier.opened[0][1]
    upstream.chunks.put_nowait(PREAMBLE + b"data: " + b"x" * 200)
    assert await read(tab) == PREAMBLE
    assert read.ended(tab)
    assert upstream.closed


async def test_a_slow_browser_is_ended_alone(shared, notifier, read, monkeypatch):
    monkeypatch.setattr(shared_streams, "TAB_QUEUE_LIMIT", 3)
    slow, quick = await join(shared, notifier), await join(shared, notifier)
    upstream = notifier.opened[0][1]
    got = b""
    for seq in range(1, 6):
        upstream.chunks.put_nowait(event(seq))
        await settle()
        got += await read(quick)
    assert got == b"".join(event(seq) for seq in range(1, 6))
    # The slow one had three queued, the fourth did not fit: dropped, and it ends (its
    # browser resumes after the last id it got).
    assert [block async for block in slow.frames()] == []
    assert not upstream.closed


async def test_an_ended_upstream_ends_its_streams_after_what_they_were_sent(shared, notifier):
    first, second = await join(shared, notifier), await join(shared, notifier)
    upstream = notifier.opened[0][1]
    upstream.chunks.put_nowait(PREAMBLE + event(1))
    upstream.chunks.put_nowait(None)
    await settle()
    assert [b async for b in first.frames()] == [PREAMBLE + event(1)]
    assert [b async for b in second.frames()] == [PREAMBLE + event(1)]
    assert upstream.closed
    # Ended, it is not joined again.
    await join(shared, notifier)
    assert len(notifier.opened) == 2


async def test_an_upstream_that_breaks_off_ends_its_streams(shared, notifier):
    tab = await join(shared, notifier)
    upstream = notifier.opened[0][1]
    upstream.chunks.put_nowait(event(1))
    upstream.chunks.put_nowait(httpx.ReadError("the notifier's stream broke off"))
    assert [b async for b in tab.frames()] == [event(1)]
    assert upstream.closed


def upstreams_gauge() -> float | None:
    return REGISTRY.get_sample_value("imagetron_gateway_event_upstreams")


async def test_the_last_stream_to_leave_closes_the_upstream(shared, notifier, streams):
    before = upstreams_gauge()
    first, second = await join(shared, notifier), await join(shared, notifier)
    assert upstreams_gauge() == before + 1
    upstream = notifier.opened[0][1]
    first.leave()
    await settle()
    assert not upstream.closed
    second.leave()
    await settle()
    assert upstream.closed
    assert shared.upstreams == 0
    assert upstreams_gauge() == before
    await join(shared, notifier)
    assert len(notifier.opened) == 2


async def test_a_refusal_reaches_every_stream_waiting_for_the_upstream(shared, notifier):
    notifier.next.append(
        FakeUpstream(503, b'{"status":503}', **{"retry-after": "5", "content-type": "x/y"})
    )
    tabs = [shared.join(SHARE, None, notifier.opener(None)) for _ in range(3)]
    results = await asyncio.gather(
        *(asyncio.shield(t.upstream.ready) for t in tabs), return_exceptions=True
    )
    assert all(isinstance(r, Refused) and r.status_code == 503 for r in results)
    assert results[0].headers["retry-after"] == "5"
    assert results[0].body == b'{"status":503}'
    assert shared.upstreams == 0
    # The next stream asks again.
    await join(shared, notifier)
    assert len(notifier.opened) == 2


async def test_an_unreachable_notifier_is_unavailable_to_each_waiting_stream(shared, notifier):
    notifier.next.append(httpx.ConnectError("refused"))
    tabs = [shared.join(SHARE, None, notifier.opener(None)) for _ in range(2)]
    results = await asyncio.gather(
        *(asyncio.shield(t.upstream.ready) for t in tabs), return_exceptions=True
    )
    assert all(isinstance(r, Unavailable) for r in results)
    assert shared.upstreams == 0


async def test_connections_are_counted_for_the_open_file_limit(shared, notifier, streams):
    """A stream that joins holds one connection, one that opens an upstream two."""
    streams.connection_limit = 3
    first = shared.join(SHARE, None, notifier.opener(None))  # 2
    second = shared.join(SHARE, None, notifier.opener(None))  # 3: joins
    other = Share(uuid.uuid4(), None, ())
    with pytest.raises(StreamsFull, match=r"open-file limit allows \(3 connections\)"):
        shared.join(other, None, notifier.opener(None))
    streams.close(SHARE.key_id, first)
    first.leave()
    with pytest.raises(StreamsFull):
        shared.join(other, None, notifier.opener(None))  # needs 2, 1 free
    shared.join(SHARE, None, notifier.opener(None))  # joining needs 1
    await settle()
    assert len(notifier.opened) == 1
    second.leave()


async def test_revoking_a_key_ends_its_streams_at_once_and_only_those(
    shared, notifier, streams, read
):
    """Even a stream waiting for its next frame, and without what was queued for it."""
    waiting = await join(shared, notifier)
    behind = await join(shared, notifier)
    other = await join(shared, notifier, share=Share(SHARE.owner_id, uuid.uuid4(), ()))
    upstream = notifier.opened[0][1]
    upstream.chunks.put_nowait(PREAMBLE)
    await settle()
    assert await read(waiting) == PREAMBLE  # and now it waits for the next frame
    streams.end(SHARE.key_id)
    assert await read(waiting) == b""
    assert read.ended(waiting)
    assert [b async for b in behind.frames()] == []  # what was queued for it is dropped
    other_upstream = notifier.opened[1][1]
    other_upstream.chunks.put_nowait(event(2))
    await settle()
    assert await read(other) == event(2)
    assert not read.ended(other)
