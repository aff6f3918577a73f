"""`GET /api/v1/events`: the notifier's SSE stream on the API's own origin.

The gateway authenticates the caller (API key or events token), then streams from the
notifier with a fresh short-lived token for that owner: the notifier trusts only tokens it
can verify, never a forwarded header, so it can also be exposed directly (Kubernetes)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Annotated

import httpx
from fastapi import APIRouter, Depends
from fastapi.responses import Response, StreamingResponse

from imagetron_gateway.entrypoints.http.deps import CallerKey, Context, EventsOwner
from imagetron_gateway.entrypoints.http.problems import problems
from imagetron_platform.errors import ServiceUnavailable
from imagetron_platform.event_stream import StreamRequest, stream_request
from imagetron_platform.events_tokens import issue_events_token

router = APIRouter(prefix="/api/v1")

#: Only needs to outlive the connect: the notifier checks it once per connection.
UPSTREAM_TOKEN_TTL = 60


@router.get(
    "/events",
    operation_id="streamEvents",
    tags=["events"],
    response_class=StreamingResponse,
    responses={200: {"content": {"text/event-stream": {}}}, **problems(401, 422, 503)},
)
async def stream_events(
    owner: EventsOwner,
    key_id: CallerKey,
    ctx: Context,
    wanted: Annotated[StreamRequest, Depends(stream_request)],
) -> Response:
    token, _ = issue_events_token(
        ctx.settings.events_token_secret.get_secret_value(),
        owner.id,
        UPSTREAM_TOKEN_TTL,
        key_id=key_id,
    )
    headers = {"Authorization": f"Bearer {token}", "Accept": "text/event-stream"}
    if wanted.last_event_id is not None:
        headers["Last-Event-ID"] = wanted.last_event_id
    request = ctx.http.build_request(
        "GET", f"{ctx.settings.notifier_url}/events", headers=headers, params=wanted.query()
    )
    try:
        upstream = await ctx.http.send(request, stream=True)
    except httpx.HTTPError as exc:
        raise ServiceUnavailable(f"The event stream is unavailable: {exc!r}") from exc
    if upstream.status_code != 200:
        # The notifier answers problem+json (e.g. 503 with Retry-After at its connection
        # cap): pass it on as it is.
        content = await upstream.aread()
        await upstream.aclose()
        passthrough = {k: v for k, v in upstream.headers.items() if k.lower() == "retry-after"}
        return Response(
            content,
            status_code=upstream.status_code,
            media_type=upstream.headers.get("content-type"),
            headers=passthrough,
        )

    # Revoking the key ends the stream here, on whichever replica holds it.
    revoked = ctx.streams.open(key_id) if key_id is not None else asyncio.Event()

    async def body() -> AsyncIterator[bytes]:
        chunks = upstream.aiter_raw()
        ended = asyncio.ensure_future(revoked.wait())
        try:
            while True:
                chunk = asyncio.ensure_future(anext(chunks))
                await asyncio.wait({chunk, ended}, return_when=asyncio.FIRST_COMPLETED)
                if not chunk.done():
                    chunk.cancel()
                    return
                try:
                    data = chunk.result()
                except StopAsyncIteration:
                    return
                yield data
        finally:
            ended.cancel()
            if key_id is not None:
                ctx.streams.close(key_id, revoked)
            await upstream.aclose()

    return StreamingResponse(
        body(),
        media_type="text/event-stream",
        headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
    )
