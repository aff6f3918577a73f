"""`GET /events` (and `/api/v1/events`, for deployments that route browsers straight here):
the caller's domain events as Server-Sent Events.

Frames are encoded once per event (in the hub) and written as bytes: with thousands of
connections per process, per-connection encoding is what would cost."""

from __future__ import annotations

import contextlib
import json
import time
from collections.abc import AsyncGenerator
from dataclasses import dataclass
from typing import Annotated, TypedDict

from fastapi import APIRouter, Depends, Request
from fastapi.responses import Response
from starlette.exceptions import HTTPException
from starlette.types import Receive, Send

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
    HandOff,
    StreamRequest,
    bearer_token,
    browser_events_token,
    send_frames,
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
        OPEN_CONNECTIONS.inc()
        try:
            await send_frames(receive, send, HEADERS, self._frames())
        finally:
            OPEN_CONNECTIONS.dec()

    async def aclose(self) -> None:
        """Nothing is held before the stream is served."""

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
