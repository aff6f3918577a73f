"""`GET /events` (and `/api/v1/events`, for deployments that route browsers straight here):
the caller's domain events as Server-Sent Events.

Frames are encoded once per event (in the hub) and written as bytes: with thousands of
connections per process, per-connection encoding is what would cost."""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from collections.abc import AsyncGenerator
from dataclasses import dataclass
from typing import Annotated, TypedDict

from fastapi import APIRouter, Depends, Request
from fastapi.responses import Response
from starlette.exceptions import HTTPException
from starlette.types import ASGIApp, Receive, Scope, Send

from imagetron_notifier.adapters.jetstream_feed import LiveHub
from imagetron_notifier.adapters.revoked_keys import RevokedKeys
from imagetron_notifier.app.feed import EventFeed, EventFilter, FeedEvent, FeedReset, sse_frame
from imagetron_notifier.metrics import (
    DELIVERY_LAG,
    EVENTS_DELIVERED,
    OPEN_CONNECTIONS,
    REJECTED_CONNECTIONS,
    REPLAYS,
)
from imagetron_notifier.settings import NotifierSettings
from imagetron_platform.errors import Unauthorized
from imagetron_platform.event_stream import (
    StreamRequest,
    bearer_token,
    browser_events_token,
    stream_request,
)
from imagetron_platform.events_tokens import EventsClaims, verify_events_token

router = APIRouter()


class NotifierState(TypedDict):
    """The lifespan state (bootstrap): what every request reads from `request.state`."""

    settings: NotifierSettings
    hub: LiveHub
    feed: EventFeed
    revoked: RevokedKeys


HEARTBEAT_FRAME = sse_frame(comment="heartbeat")


async def subscriber(request: Request) -> EventsClaims:
    """Runs before the stream starts, so refusals are proper HTTP answers."""
    settings: NotifierSettings = request.state.settings
    hub: LiveHub = request.state.hub
    # The gateway's proxy sends a bearer token; browsers routed straight here, theirs.
    token = bearer_token(request) or browser_events_token(request)
    claims = (
        verify_events_token(settings.events_token_secret.get_secret_value(), token)
        if token
        else None
    )
    revoked: RevokedKeys = request.state.revoked
    if claims is None or claims.key_id in revoked:
        raise Unauthorized("A valid events token is required (POST /api/v1/events/token).")
    if hub.connections >= settings.max_connections:
        REJECTED_CONNECTIONS.inc()
        raise HTTPException(
            503,
            f"This notifier holds its maximum of {settings.max_connections} connections; "
            f"retry in {settings.retry_after_seconds} s.",
            headers={"Retry-After": str(settings.retry_after_seconds)},
        )
    return claims


@router.get("/events", include_in_schema=False)
@router.get("/api/v1/events", include_in_schema=False)
async def stream_events(
    request: Request,
    claims: Annotated[EventsClaims, Depends(subscriber)],
    wanted: Annotated[StreamRequest, Depends(stream_request)],
) -> Response:
    after = wanted.after
    if after is not None:
        REPLAYS.labels("resumed").inc()
    return HandOff(
        EventStream(
            settings=request.state.settings,
            feed=request.state.feed,
            revoked=request.state.revoked,
            claims=claims,
            only=EventFilter(
                types=wanted.type_set, task_id=wanted.task_id, prompt_id=wanted.prompt_id
            ),
            after=after,
        )
    )


HEADERS = [
    (b"content-type", b"text/event-stream; charset=utf-8"),
    (b"cache-control", b"no-cache"),
    (b"x-accel-buffering", b"no"),
]


@dataclass(frozen=True)
class EventStream:
    """One caller's stream, from the first frame until the browser leaves (or its key is
    revoked, or the process stops)."""

    settings: NotifierSettings
    feed: EventFeed
    revoked: RevokedKeys
    claims: EventsClaims
    only: EventFilter
    after: int | None

    async def serve(self, receive: Receive, send: Send) -> None:
        await send({"type": "http.response.start", "status": 200, "headers": HEADERS})
        OPEN_CONNECTIONS.inc()
        # The server tells of a browser that left only through `receive`: one task waits
        # for it and cancels this one, which is the only place the cancellation ends.
        streaming = asyncio.current_task()
        assert streaming is not None

        ended = False

        def end_stream(_: object) -> None:
            if not ended:
                streaming.cancel()

        left = asyncio.ensure_future(_disconnected(receive))
        left.add_done_callback(end_stream)
        try:
            async with contextlib.aclosing(self._frames()) as frames:
                async for frame in frames:
                    await send({"type": "http.response.body", "body": frame, "more_body": True})
            await send({"type": "http.response.body", "body": b"", "more_body": False})
        except asyncio.CancelledError:
            if not left.done() or left.cancelled() or streaming.cancelling() > 1:
                raise  # not (only) the browser leaving: the process is stopping
            streaming.uncancel()
        finally:
            ended = True
            left.remove_done_callback(end_stream)
            left.cancel()
            OPEN_CONNECTIONS.dec()

    async def _frames(self) -> AsyncGenerator[bytes, None]:
        key_id = self.claims.key_id
        yield sse_frame(comment="connected", retry_ms=self.settings.client_retry_ms)
        async with contextlib.aclosing(self.feed.follow(self.claims.owner_id, self.after)) as items:
            async for item in items:
                # Checked at every event and heartbeat: a revoked key's stream ends within
                # `heartbeat_seconds`.
                if key_id is not None and key_id in self.revoked:
                    return
                if isinstance(item, FeedEvent):
                    if not self.only.matches(item):
                        continue
                    if item.occurred_at is not None:
                        DELIVERY_LAG.observe(max(0.0, time.time() - item.occurred_at))
                    EVENTS_DELIVERED.inc()
                    yield item.frame
                elif isinstance(item, FeedReset):
                    REPLAYS.labels("reset").inc()
                    yield sse_frame(
                        json.dumps(
                            {
                                "reason": "The events after this id are no longer kept; "
                                "reload your state.",
                                "requested_after": item.requested_after,
                                "oldest_kept": item.oldest_kept,
                            }
                        ),
                        event="reset",
                    )
                else:
                    yield HEARTBEAT_FRAME


async def _disconnected(receive: Receive) -> None:
    while (await receive())["type"] != "http.disconnect":
        pass


#: What FastAPI's and Starlette's routing keep in a request's scope for themselves.
ROUTING_SCOPE_KEYS = ("fastapi_", "starlette.exception_handlers")

#: Where the route leaves the stream for `StreamsOutsideTheRoute` to serve.
HANDOFF = "imagetron.event_stream"


class HandOff(Response):
    """The route's answer when the caller may stream: the stream itself, for the
    middleware to serve once FastAPI's routing, dependencies and exception handling have
    returned. Held for hours by thousands of connections, their frames (about half of each
    connection's memory, measured) would be kept for nothing."""

    def __init__(self, stream: EventStream) -> None:
        super().__init__()
        self.stream = stream

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        scope[HANDOFF] = self.stream


class StreamsOutsideTheRoute:
    """The innermost middleware: serves a stream the route handed off, after the routing
    has returned (inside the platform's metrics, correlation and security headers)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        await self.app(scope, receive, send)
        stream: EventStream | None = scope.pop(HANDOFF, None)
        if stream is not None:
            # The routing has ended, and with it what FastAPI and Starlette keep in the scope
            # for it (exit stacks, exception handlers): the scope lives as long as the
            # stream, they need not (tracemalloc, 2,000 streams: about 3 KB each).
            for key in [k for k in scope if k.startswith(ROUTING_SCOPE_KEYS)]:
                del scope[key]
            await stream.serve(receive, send)
