"""Streams handed off by their route (`imagetron_platform.event_stream`): served once the
layers inside the middleware have returned, released if never served, and ended when the
client leaves."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncGenerator
from typing import Any

import pytest
from starlette.types import Message, Receive, Scope, Send

from imagetron_platform.event_stream import HandOff, StreamsOutsideTheRoute, send_frames

HEADERS = [(b"content-type", b"text/event-stream")]


class Stream:
    def __init__(self, frames: list[bytes], inner_returned: list[bool] | None = None) -> None:
        self.frames = frames
        self.inner_returned = inner_returned
        self.served_after_inner: bool | None = None
        self.closed = 0

    async def serve(self, receive: Receive, send: Send) -> None:
        if self.inner_returned is not None:
            self.served_after_inner = self.inner_returned[0]

        async def frames() -> AsyncGenerator[bytes, None]:
            for frame in self.frames:
                yield frame

        await send_frames(receive, send, HEADERS, frames())

    async def aclose(self) -> None:
        self.closed += 1


def _scope() -> Scope:
    return {"type": "http", "path": "/events", "fastapi_astack": object(), "state": {}}


async def _idle_receive() -> Message:
    await asyncio.Event().wait()
    raise AssertionError("unreachable")


async def test_the_stream_is_served_after_the_inner_layers_returned():
    inner_returned = [False]
    stream = Stream([b"data: 1\n\n", b"data: 2\n\n"], inner_returned)

    async def inner(scope: Scope, receive: Receive, send: Send) -> None:
        await HandOff(stream)(scope, receive, send)
        inner_returned[0] = True

    sent: list[Message] = []

    async def send(message: Message) -> None:
        sent.append(message)

    scope = _scope()
    await StreamsOutsideTheRoute(inner)(scope, _idle_receive, send)
    assert stream.served_after_inner is True
    assert sent[0] == {"type": "http.response.start", "status": 200, "headers": HEADERS}
    assert [m.get("body") for m in sent[1:]] == [b"data: 1\n\n", b"data: 2\n\n", b""]
    # What the routing kept in the scope is gone while the stream lives.
    assert "fastapi_astack" not in scope


async def test_a_stream_handed_off_but_never_served_is_released():
    stream = Stream([])

    async def inner(scope: Scope, receive: Receive, send: Send) -> None:
        await HandOff(stream)(scope, receive, send)
        raise RuntimeError("a layer failed after the route answered")

    async def send(message: Message) -> None:
        raise AssertionError("nothing is sent")

    with pytest.raises(RuntimeError):
        await StreamsOutsideTheRoute(inner)(_scope(), _idle_receive, send)
    assert stream.closed == 1


async def test_the_stream_ends_when_the_client_leaves_and_not_otherwise():
    gate = asyncio.Event()
    closed: list[bool] = []

    async def endless() -> AsyncGenerator[bytes, None]:
        try:
            yield b"data: first\n\n"
            await asyncio.Event().wait()
            yield b"never"
        finally:
            closed.append(True)

    async def receive() -> Message:
        await gate.wait()
        return {"type": "http.disconnect"}

    sent: list[dict[str, Any]] = []

    async def send(message: Message) -> None:
        sent.append(message)

    serving = asyncio.create_task(send_frames(receive, send, HEADERS, endless()))
    await asyncio.sleep(0.05)
    assert not serving.done()
    assert [m.get("body") for m in sent] == [None, b"data: first\n\n"]
    gate.set()  # the client leaves
    await asyncio.wait_for(serving, 1)
    assert closed == [True]
    # A stop of the process (the task cancelled by someone else) is not swallowed.
    stopping = asyncio.create_task(send_frames(_idle_receive, send, HEADERS, endless()))
    await asyncio.sleep(0.05)
    stopping.cancel()
    with pytest.raises(asyncio.CancelledError):
        await stopping
