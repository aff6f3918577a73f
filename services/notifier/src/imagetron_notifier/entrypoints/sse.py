"""`GET /events` (and `/api/v1/events`, for deployments that route browsers straight here):
the caller's domain events as Server-Sent Events.

Frames are encoded once per event (in the hub) and written as bytes: with thousands of
connections per process, per-connection encoding is what would cost."""

from __future__ import annotations

import json
import time
from collections.abc import AsyncIterator
from typing import Annotated, TypedDict
from uuid import UUID

from fastapi import APIRouter, Depends, Header, Query, Request
from fastapi.responses import StreamingResponse
from starlette.exceptions import HTTPException

from imagetron_notifier.adapters.jetstream_feed import LiveHub
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
from imagetron_platform.events_tokens import EVENTS_COOKIE, verify_events_token

#: A stream sequence: JetStream's are unsigned 64-bit, so at most 19 digits here.
LAST_EVENT_ID = r"^[0-9]{1,19}$"

router = APIRouter()


class NotifierState(TypedDict):
    """The lifespan state (bootstrap): what every request reads from `request.state`."""

    settings: NotifierSettings
    hub: LiveHub
    feed: EventFeed


HEARTBEAT_FRAME = sse_frame(comment="heartbeat")
EVENT_TYPES = r"^[a-z_]+\.[a-z_]+(,[a-z_]+\.[a-z_]+)*$"


def _token(request: Request) -> str | None:
    """Bearer header (the gateway's proxy), `token` query parameter or the events cookie
    (browsers routed straight here)."""
    scheme, _, value = request.headers.get("authorization", "").partition(" ")
    if scheme.lower() == "bearer" and value.strip():
        return value.strip()
    return request.query_params.get("token") or request.cookies.get(EVENTS_COOKIE)


def subscriber(request: Request) -> UUID:
    """Runs before the stream starts, so refusals are proper HTTP answers."""
    settings: NotifierSettings = request.state.settings
    hub: LiveHub = request.state.hub
    token = _token(request)
    claims = (
        verify_events_token(settings.events_token_secret.get_secret_value(), token)
        if token
        else None
    )
    if claims is None:
        raise Unauthorized("A valid events token is required (POST /api/v1/events/token).")
    if hub.connections >= settings.max_connections:
        REJECTED_CONNECTIONS.inc()
        raise HTTPException(
            503,
            f"This notifier holds its maximum of {settings.max_connections} connections; "
            f"retry in {settings.retry_after_seconds} s.",
            headers={"Retry-After": str(settings.retry_after_seconds)},
        )
    return claims.owner_id


@router.get("/events", include_in_schema=False)
@router.get("/api/v1/events", include_in_schema=False)
async def stream_events(
    request: Request,
    owner_id: Annotated[UUID, Depends(subscriber)],
    last_event_id: Annotated[
        str | None, Header(alias="Last-Event-ID", pattern=LAST_EVENT_ID)
    ] = None,
    task_id: UUID | None = None,
    prompt_id: UUID | None = None,
    types: Annotated[str | None, Query(pattern=EVENT_TYPES)] = None,
) -> StreamingResponse:
    settings: NotifierSettings = request.state.settings
    feed: EventFeed = request.state.feed
    wanted = EventFilter(
        types=frozenset(types.split(",")) if types else frozenset(),
        task_id=task_id,
        prompt_id=prompt_id,
    )
    after = int(last_event_id) if last_event_id is not None else None
    if after is not None:
        REPLAYS.labels("resumed").inc()

    async def frames() -> AsyncIterator[bytes]:
        OPEN_CONNECTIONS.inc()
        try:
            yield sse_frame(comment="connected", retry_ms=settings.client_retry_ms)
            async for item in feed.follow(owner_id, after):
                if isinstance(item, FeedEvent):
                    if not wanted.matches(item):
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
        finally:
            OPEN_CONNECTIONS.dec()

    return StreamingResponse(
        frames(),
        media_type="text/event-stream",
        headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
    )
