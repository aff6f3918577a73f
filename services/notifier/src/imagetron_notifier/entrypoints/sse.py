"""`GET /events` (and `/api/v1/events`, for deployments that route browsers straight here):
the caller's domain events as Server-Sent Events."""

from __future__ import annotations

import json
import time
from collections.abc import AsyncIterator
from datetime import datetime
from typing import Annotated
from uuid import UUID

from fastapi import APIRouter, Depends, Header, Query, Request
from fastapi.sse import EventSourceResponse, ServerSentEvent
from imagetron_platform.errors import Unauthorized
from imagetron_platform.events_tokens import verify_events_token
from starlette.exceptions import HTTPException

from imagetron_notifier.adapters.jetstream_feed import LiveHub
from imagetron_notifier.app.feed import EventFeed, EventFilter, FeedEvent
from imagetron_notifier.metrics import (
    DELIVERY_LAG,
    EVENTS_DELIVERED,
    OPEN_CONNECTIONS,
    REJECTED_CONNECTIONS,
    REPLAYS,
)
from imagetron_notifier.settings import NotifierSettings

router = APIRouter()


def _token(request: Request) -> str | None:
    scheme, _, value = request.headers.get("authorization", "").partition(" ")
    if scheme.lower() == "bearer" and value.strip():
        return value.strip()
    return request.query_params.get("token")


def subscriber(request: Request) -> UUID:
    """Runs before the stream starts, so refusals are proper HTTP answers."""
    settings: NotifierSettings = request.app.state.settings
    hub: LiveHub = request.app.state.hub
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


def _lag_seconds(data: str) -> float | None:
    try:
        occurred = datetime.fromisoformat(json.loads(data)["occurred_at"])
    except (ValueError, KeyError, TypeError):
        return None
    return max(0.0, time.time() - occurred.timestamp())


@router.get("/events", response_class=EventSourceResponse, include_in_schema=False)
@router.get("/api/v1/events", response_class=EventSourceResponse, include_in_schema=False)
async def stream_events(
    request: Request,
    owner_id: Annotated[UUID, Depends(subscriber)],
    last_event_id: Annotated[str | None, Header(alias="Last-Event-ID", pattern=r"^[0-9]+$")] = None,
    task_id: UUID | None = None,
    prompt_id: UUID | None = None,
    types: Annotated[str | None, Query(pattern=r"^[a-z_]+\.[a-z_]+(,[a-z_]+\.[a-z_]+)*$")] = None,
) -> AsyncIterator[ServerSentEvent]:
    settings: NotifierSettings = request.app.state.settings
    feed: EventFeed = request.app.state.feed
    wanted = EventFilter(
        types=frozenset(types.split(",")) if types else frozenset(),
        task_id=task_id,
        prompt_id=prompt_id,
    )
    after = int(last_event_id) if last_event_id is not None else None
    if after is not None:
        REPLAYS.labels("resumed").inc()
    OPEN_CONNECTIONS.inc()
    try:
        yield ServerSentEvent(comment="connected", retry=settings.client_retry_ms)
        async for item in feed.follow(owner_id, after):
            if isinstance(item, FeedEvent):
                if not wanted.matches(item):
                    continue
                lag = _lag_seconds(item.data)
                if lag is not None:
                    DELIVERY_LAG.observe(lag)
                EVENTS_DELIVERED.inc()
                yield ServerSentEvent(id=str(item.seq), event=item.type, raw_data=item.data)
            else:
                REPLAYS.labels("reset").inc()
                yield ServerSentEvent(
                    event="reset",
                    raw_data=json.dumps(
                        {
                            "reason": "The events after this id are no longer kept; "
                            "reload your state.",
                            "requested_after": item.requested_after,
                            "oldest_kept": item.oldest_kept,
                        }
                    ),
                )
    finally:
        OPEN_CONNECTIONS.dec()
