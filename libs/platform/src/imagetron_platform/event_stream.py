"""What a request for the event stream carries, defined once for the gateway (which checks
it and proxies it) and the notifier (which serves it): who asks (a bearer credential, or
for `EventSource`, which cannot send headers, a token in the query or a cookie) and which
events (resume after `Last-Event-ID`, only one task's or prompt's, only some types); and how
a stream is served once the route has answered that it may start (`HandOff`,
`StreamsOutsideTheRoute`, `send_frames`)."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncGenerator
from dataclasses import dataclass
from typing import Annotated, Protocol
from uuid import UUID

from fastapi import Header, Query, Request
from starlette.responses import Response
from starlette.types import ASGIApp, Receive, Scope, Send

from imagetron_platform.events_tokens import EVENTS_COOKIE

#: `types=task.completed,image.persisted`: family-qualified event types, comma-separated.
EVENT_TYPES_PATTERN = r"^[a-z_]+\.[a-z_]+(,[a-z_]+\.[a-z_]+)*$"
#: The SSE id is the EVENTS stream's sequence number: unsigned 64-bit, so at most 19 digits.
LAST_EVENT_ID_PATTERN = r"^[0-9]{1,19}$"


def bearer_token(request: Request) -> str | None:
    """The credential of an `Authorization: Bearer …` header, if there is one.

    Read from the request rather than declared as a parameter: the contract documents it
    as a security scheme, not as a header parameter."""
    scheme, _, value = request.headers.get("authorization", "").partition(" ")
    return (value.strip() or None) if scheme.lower() == "bearer" else None


def browser_events_token(request: Request) -> str | None:
    """The events token of a browser's `EventSource`: the `token` query parameter, else the
    cookie `POST /api/v1/events/token` set."""
    return request.query_params.get("token") or request.cookies.get(EVENTS_COOKIE)


@dataclass(frozen=True)
class StreamRequest:
    """Which of the caller's events a stream request wants (a FastAPI dependency)."""

    last_event_id: str | None = None
    task_id: UUID | None = None
    prompt_id: UUID | None = None
    types: str | None = None

    @property
    def after(self) -> int | None:
        """The stream sequence to resume after."""
        return int(self.last_event_id) if self.last_event_id is not None else None

    @property
    def type_set(self) -> frozenset[str]:
        """The wanted event types; empty means all."""
        return frozenset(self.types.split(",")) if self.types else frozenset()

    def query(self) -> dict[str, str]:
        """The filters as query parameters, to pass the request on."""
        filters = {"task_id": self.task_id, "prompt_id": self.prompt_id, "types": self.types}
        return {name: str(value) for name, value in filters.items() if value is not None}


async def stream_request(
    last_event_id: Annotated[
        str | None, Header(alias="Last-Event-ID", pattern=LAST_EVENT_ID_PATTERN)
    ] = None,
    task_id: UUID | None = None,
    prompt_id: UUID | None = None,
    types: Annotated[str | None, Query(pattern=EVENT_TYPES_PATTERN)] = None,
    resume_after: Annotated[
        str | None, Query(alias="last_event_id", pattern=LAST_EVENT_ID_PATTERN)
    ] = None,
) -> StreamRequest:
    # A browser resends the header by itself while its EventSource reconnects; a new
    # EventSource (opened after the old one gave up) can only say where it was in the URL.
    # The header wins when both are sent.
    after = last_event_id if last_event_id is not None else resume_after
    return StreamRequest(after, task_id, prompt_id, types)


class ServedStream(Protocol):
    """A stream the route accepted, to be served after the routing has returned."""

    async def serve(self, receive: Receive, send: Send) -> None:
        """Send the response, from its start until the stream or the client ends."""

    async def aclose(self) -> None:
        """Release what the stream holds if it is never served."""


#: What FastAPI's and Starlette's routing keep in a request's scope for themselves.
ROUTING_SCOPE_KEYS = ("fastapi_", "starlette.exception_handlers")
#: Where the route leaves the stream for `StreamsOutsideTheRoute` to serve.
HANDOFF = "imagetron.event_stream"


class HandOff(Response):
    """The route's answer when the caller may stream: the stream itself, for the
    middleware to serve once FastAPI's routing, dependencies and exception handling have
    returned. Held for hours by thousands of connections, their frames (about half of a
    notifier connection's memory, measured; in the gateway, about 105 of the objects per
    stream that every full collection of the garbage collector walks) would be kept for
    nothing."""

    def __init__(self, stream: ServedStream) -> None:
        super().__init__()
        self.stream = stream

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        scope[HANDOFF] = self.stream


class StreamsOutsideTheRoute:
    """Serves a stream the route handed off, after the layers inside it have returned (so
    what they would add to an answer, the stream's own headers must say)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        try:
            await self.app(scope, receive, send)
        except BaseException:
            handed: ServedStream | None = scope.pop(HANDOFF, None)
            if handed is not None:
                await handed.aclose()
            raise
        handed = scope.pop(HANDOFF, None)
        if handed is not None:
            # The routing has ended, and with it what FastAPI and Starlette keep in the scope
            # for it (exit stacks, exception handlers): the scope lives as long as the
            # stream, they need not (tracemalloc, 2,000 streams: about 3 KB each).
            for key in [k for k in scope if k.startswith(ROUTING_SCOPE_KEYS)]:
                del scope[key]
            await handed.serve(receive, send)


async def send_frames(
    receive: Receive,
    send: Send,
    headers: list[tuple[bytes, bytes]],
    frames: AsyncGenerator[bytes, None],
) -> None:
    """A 200 with `headers`, then each of `frames` as it comes, until they end or the client
    leaves. The server tells of a client that left only through `receive`: one watcher waits
    for it and cancels the sending task, where it waits for its next frame (no task group,
    no second task per frame)."""
    await send({"type": "http.response.start", "status": 200, "headers": headers})
    streaming = asyncio.current_task()
    assert streaming is not None
    ended = False

    def end_stream(_: object) -> None:
        if not ended:
            streaming.cancel()

    left = asyncio.ensure_future(_disconnected(receive))
    left.add_done_callback(end_stream)
    try:
        async with contextlib.aclosing(frames):
            async for frame in frames:
                await send({"type": "http.response.body", "body": frame, "more_body": True})
        await send({"type": "http.response.body", "body": b"", "more_body": False})
    except asyncio.CancelledError:
        if not left.done() or left.cancelled() or streaming.cancelling() > 1:
            raise  # not (only) the client leaving: the process is stopping
        streaming.uncancel()
    finally:
        ended = True
        left.remove_done_callback(end_stream)
        left.cancel()


async def _disconnected(receive: Receive) -> None:
    while (await receive())["type"] != "http.disconnect":
        pass
