"""Browser event streams that want the same events share one stream from the notifier.

Each browser stream through the gateway held a connection of its own to the notifier: two
open files in this process per stream (a gateway here could hold 9,872 at most, its
open-file limit is 20,000) and one more connection for the notifier to write every event
to. An artist's tabs (the studio opens one stream per browser tab) want the same events:
now the streams of one owner, key and filter share one upstream while they want the same
point of it, and the notifier's fan-out ends at the gateway, which copies each frame to the
tabs.

Which stream may join which shared upstream:
- one without `Last-Event-ID` wants what happens from now on: it joins an upstream that was
  opened live (without an id) and has not ended;
- one resuming after id N joins an upstream whose last event passed on was N (opened after N
  and not past it yet, or any that has reached N exactly): from there on both get the
  same events, in order, none missing;
- otherwise it opens a new upstream, which later streams may join.

The gateway splits the notifier's stream into frames (ours: each ends with a blank line, an
event's `id` line first) to know where the upstream stands: its last event's id. An event
without an id (the notifier's `reset`) leaves that unknown, and nobody joins by id until the
next one. The first frame (`: connected`, with the reconnection delay) is kept and sent first
to every stream that joins later.

Each stream has its own queue of blocks of frames: a slow browser never holds back the
others. One that falls `TAB_QUEUE_LIMIT` blocks behind is ended; its browser reconnects with
the last id it got, and the notifier replays the rest. An upstream that ends or breaks off
ends its streams after what they were sent (the browsers resume the same way); the last
stream to leave an upstream closes it."""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from collections.abc import AsyncGenerator, Awaitable, Callable
from dataclasses import dataclass
from uuid import UUID

import httpx

from imagetron_gateway.adapters.notifier_streams import NotifierStream
from imagetron_gateway.adapters.revocations import OpenStreams
from imagetron_gateway.metrics import EVENT_UPSTREAMS, STREAMS_BEHIND

log = logging.getLogger(__name__)

#: Blocks of frames queued for one browser stream before it is ended (it resumes by id).
TAB_QUEUE_LIMIT = 1000
#: A frame the notifier has not finished after this many bytes ends the upstream.
MAX_FRAME_BYTES = 1024 * 1024

OpenUpstream = Callable[[], Awaitable[NotifierStream]]


@dataclass(frozen=True)
class Share:
    """What streams must have in common to share an upstream: whose events, through which
    key (revoking it ends them all) and which of them (the filters, as query parameters)."""

    owner_id: UUID
    key_id: UUID | None
    filters: tuple[tuple[str, str], ...]


class Refused(Exception):
    """The notifier refused the stream (its answer, to pass on to each stream waiting)."""

    def __init__(self, status_code: int, body: bytes, headers: httpx.Headers) -> None:
        super().__init__(f"the notifier answered {status_code}")
        self.status_code = status_code
        self.body = body
        self.headers = headers


class Unavailable(Exception):
    """No answer from the notifier (unreachable, too slow, not HTTP)."""


class Tab:
    """One browser stream's place on a shared upstream: the blocks of frames queued for it.

    A deque and one future while it waits (a gateway holds ten thousand of these)."""

    __slots__ = ("_ended", "_items", "_waiter", "upstream")

    def __init__(self, upstream: SharedUpstream, first: bytes | None) -> None:
        self.upstream = upstream
        self._items: deque[bytes] = deque([first] if first else ())
        self._waiter: asyncio.Future[None] | None = None
        self._ended = False

    def push(self, block: bytes) -> None:
        if self._ended:
            return
        if len(self._items) >= TAB_QUEUE_LIMIT:
            # What is queued is all newer than what was sent: dropped, and the browser
            # resumes after the last id it got.
            log.info("an event stream fell %d blocks behind; ended, it resumes", TAB_QUEUE_LIMIT)
            STREAMS_BEHIND.inc()
            self._items.clear()
            self.end()
            return
        self._items.append(block)
        self._wake()

    def end(self) -> None:
        """No more frames: the stream ends once it has sent those queued."""
        self._ended = True
        self._wake()

    def revoke(self) -> None:
        """Its key was revoked: the stream ends at once, without what is queued."""
        self._items.clear()
        self.end()

    def _wake(self) -> None:
        if self._waiter is not None and not self._waiter.done():
            self._waiter.set_result(None)

    async def frames(self) -> AsyncGenerator[bytes, None]:
        """The queued blocks as they come (joined, when several wait), until ended."""
        items = self._items
        while True:
            if items:
                block = items.popleft() if len(items) == 1 else b"".join(items)
                items.clear()
                yield block
                continue
            if self._ended:
                return
            self._waiter = asyncio.get_running_loop().create_future()
            try:
                await self._waiter
            finally:
                self._waiter = None

    def leave(self) -> None:
        """The browser stream ended: its upstream closes if it was the last one."""
        self._ended = True
        self.upstream.detach(self)


class SharedUpstream:
    """One stream from the notifier and the browser streams it is passed on to."""

    def __init__(self, shares: SharedStreams, share: Share, after: str | None) -> None:
        self.share = share
        #: Opened without an id: streams that want only what happens from now may join.
        self.live = after is None
        #: The id of the last event passed on (None: unknown, or none yet on a live one).
        self.position = after
        #: The notifier's first frame, sent first to streams that join later.
        self.preamble: bytes | None = None
        self.tabs: set[Tab] = set()
        self.ended = False
        #: Done when the notifier has accepted the stream (else `Refused`/`Unavailable`).
        self.ready: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self.ready.add_done_callback(_retrieve)
        self._shares = shares
        self._task: asyncio.Task[None] | None = None

    def start(self, open_upstream: OpenUpstream) -> None:
        self._task = asyncio.create_task(self._run(open_upstream))

    def attach(self) -> Tab:
        tab = Tab(self, self.preamble)
        self.tabs.add(tab)
        return tab

    def detach(self, tab: Tab) -> None:
        self.tabs.discard(tab)
        if not self.tabs:
            self._end()
            if self._task is not None:
                self._task.cancel()

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)

    def _end(self) -> None:
        if not self.ended:
            self.ended = True
            self._shares.forget(self)

    async def _run(self, open_upstream: OpenUpstream) -> None:
        upstream: NotifierStream | None = None
        try:
            try:
                upstream = await open_upstream()
                if upstream.status_code != 200:
                    body = await upstream.aread()
                    self.ready.set_exception(Refused(upstream.status_code, body, upstream.headers))
                    return
            except httpx.HTTPError as exc:
                self.ready.set_exception(Unavailable(repr(exc)))
                return
            self.ready.set_result(None)
            await self._relay(upstream)
        except Exception as exc:
            log.exception("a shared event stream failed")
            if not self.ready.done():
                self.ready.set_exception(Unavailable(repr(exc)))
        finally:
            self._end()
            if not self.ready.done():
                self.ready.cancel()
            for tab in self.tabs:
                tab.end()
            if upstream is not None:
                await upstream.aclose()

    async def _relay(self, upstream: NotifierStream) -> None:
        pending = b""
        try:
            async for chunk in upstream.aiter_raw():
                pending = pending + chunk if pending else chunk
                end = pending.rfind(b"\n\n")
                if end >= 0:
                    block, pending = pending[: end + 2], pending[end + 2 :]
                    self._advance(block)
                    for tab in self.tabs:
                        tab.push(block)
                if len(pending) > MAX_FRAME_BYTES:
                    log.warning("the notifier sent a frame over %d bytes", MAX_FRAME_BYTES)
                    return
        except httpx.TransportError as exc:
            # Its notifier replica died: the browsers resume elsewhere with their last id.
            log.info("the notifier's stream broke off (%r); its streams will resume", exc)

    def _advance(self, block: bytes) -> None:
        """Note where the upstream stands after `block` (whole frames)."""
        frames = block.split(b"\n\n")[:-1]
        if self.preamble is None:
            self.preamble = frames[0] + b"\n\n" if _event_id(frames[0]) is None else b""
        for frame in frames:
            seen = _event_id(frame)
            if seen is not None:
                self.position = seen or None


def _event_id(frame: bytes) -> str | None:
    """The frame's event id; "" for an event without one; None for a frame with no event
    (a comment, the reconnection delay)."""
    event = False
    for line in frame.split(b"\n"):
        name, _, value = line.partition(b":")
        if name == b"id":
            return value.removeprefix(b" ").decode()
        event = event or name == b"data"
    return "" if event else None


def _retrieve(ready: asyncio.Future[None]) -> None:
    """A refusal nobody waited for any more is not an unretrieved exception."""
    if not ready.cancelled():
        ready.exception()


class SharedStreams:
    """The upstreams this gateway holds, by what they share."""

    def __init__(self, streams: OpenStreams) -> None:
        self._streams = streams
        self._upstreams: dict[Share, list[SharedUpstream]] = {}

    def join(self, share: Share, after: str | None, open_upstream: OpenUpstream) -> Tab:
        """A place on an upstream for a new browser stream (`open_upstream` is called when
        none can be joined), counted in `OpenStreams` (and revoked with its key) until it is
        closed there. `StreamsFull` when this gateway has no room for the stream (or for the
        upstream it would need)."""
        upstream = next((u for u in self._upstreams.get(share, ()) if _joinable(u, after)), None)
        connections = 1 if upstream else 2
        self._streams.check(connections)
        if upstream is None:
            upstream = SharedUpstream(self, share, after)
            EVENT_UPSTREAMS.inc()
            self._upstreams.setdefault(share, []).append(upstream)
            upstream.start(open_upstream)
        tab = upstream.attach()
        self._streams.open(share.key_id, tab, connections)
        return tab

    def forget(self, upstream: SharedUpstream) -> None:
        """The upstream ended: no stream joins it any more, its connection is given back."""
        upstreams = self._upstreams.get(upstream.share)
        if upstreams is None or upstream not in upstreams:
            return
        upstreams.remove(upstream)
        if not upstreams:
            del self._upstreams[upstream.share]
        self._streams.release_connection()
        EVENT_UPSTREAMS.dec()

    async def aclose(self) -> None:
        """Close every upstream (the process stops): their browser streams end."""
        tasks = [u.stop() for ups in self._upstreams.values() for u in ups]
        await asyncio.gather(*tasks, return_exceptions=True)

    @property
    def upstreams(self) -> int:
        return sum(len(u) for u in self._upstreams.values())


def _joinable(upstream: SharedUpstream, after: str | None) -> bool:
    return upstream.live if after is None else upstream.position == after
