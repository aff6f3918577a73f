"""`GET /api/v1/events`: the notifier's SSE stream on the API's own origin.

The gateway authenticates the caller (API key or events token), then streams from the
notifier with a fresh short-lived token for that owner: the notifier trusts only tokens it
can verify, never a forwarded header, so it can also be exposed directly (Kubernetes).

Browser streams that want the same events (one owner's tabs, through one key, with the same
filters, from the same point) share one stream from the notifier
(`adapters/shared_streams.py`), each on a connection of its own (`adapters/
notifier_streams.py`: no pool, so none to wait for and none to walk). What limits streams is
the notifier's connection cap (its 503 with `Retry-After` is passed on at once) and this
process's open-file limit (see `GatewaySettings.max_event_streams`).

The route joins (or opens) an upstream and hands the relay off (`HandOff`): it is served
after the routing has returned (`StreamsOutsideTheRoute`, outside the request guard), so a
stream held for hours keeps no frame of FastAPI's routing, dependencies or the guard. With
thousands of streams, what each keeps is what every full collection of the garbage
collector walks: the hand-off took about 105 tracked objects off each stream (2,000 streams:
675,249 -> 463,269), and a full collection with 9,145 streams had paused the gateway 1.9 s.
For the same reason a revoked key ends its streams through their queues (`Tab.revoke`), not
through a watching task per stream.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from typing import Annotated
from uuid import UUID

from fastapi import APIRouter, Depends, Request
from fastapi.responses import Response, StreamingResponse
from starlette.types import Receive, Send

from imagetron_gateway.adapters.notifier_streams import NotifierStream
from imagetron_gateway.adapters.revocations import OpenStreams, StreamsFull
from imagetron_gateway.adapters.shared_streams import Refused, Share, Tab, Unavailable
from imagetron_gateway.entrypoints.http.deps import CallerKey, Context, EventsOwner
from imagetron_gateway.entrypoints.http.problems import problems
from imagetron_platform.errors import ServiceUnavailable
from imagetron_platform.event_stream import HandOff, StreamRequest, send_frames, stream_request
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
    request: Request,
    owner: EventsOwner,
    key_id: CallerKey,
    ctx: Context,
    wanted: Annotated[StreamRequest, Depends(stream_request)],
) -> Response:
    async def open_upstream() -> NotifierStream:
        token, _ = issue_events_token(
            ctx.settings.events_token_secret.get_secret_value(),
            owner.id,
            UPSTREAM_TOKEN_TTL,
            key_id=key_id,
        )
        headers = {"Authorization": f"Bearer {token}", "Accept": "text/event-stream"}
        if wanted.last_event_id is not None:
            headers["Last-Event-ID"] = wanted.last_event_id
        return await ctx.notifier.open(
            f"{ctx.settings.notifier_url}/events", headers=headers, params=wanted.query()
        )

    share = Share(owner.id, key_id, tuple(sorted(wanted.query().items())))
    # Counted before the notifier is asked: a gateway at its limit answers at once.
    try:
        tab = ctx.shared_streams.join(share, wanted.last_event_id, open_upstream)
    except StreamsFull as exc:
        raise ServiceUnavailable(
            f"This gateway holds {exc.holds}; retry in {ServiceUnavailable.retry_after_seconds} s."
        ) from exc
    # Served after the request guard has returned: the stream says its rate-limit fields.
    rate_headers: list[tuple[bytes, bytes]] = request.state.rate_headers
    relay = Relay(tab, [*RELAY_HEADERS, *rate_headers], ctx.streams, key_id)
    try:
        # Shielded: a browser that leaves while it waits must not cancel the others' wait.
        await asyncio.shield(tab.upstream.ready)
    except Refused as refused:
        await relay.aclose()
        # The notifier answers problem+json (e.g. 503 with Retry-After at its connection
        # cap): passed on as it is.
        retry_after = refused.headers.get("retry-after")
        return Response(
            refused.body,
            status_code=refused.status_code,
            media_type=refused.headers.get("content-type"),
            headers={"Retry-After": retry_after} if retry_after is not None else None,
        )
    except Unavailable as exc:
        await relay.aclose()
        raise ServiceUnavailable(f"The event stream is unavailable: {exc}") from exc
    except BaseException:
        await relay.aclose()
        raise
    return HandOff(relay)


RELAY_HEADERS = [
    (b"content-type", b"text/event-stream; charset=utf-8"),
    (b"cache-control", b"no-cache"),
    (b"x-accel-buffering", b"no"),
]


@dataclass
class Relay:
    """A browser's stream: its place on a shared stream from the notifier, passed on as it
    comes; uncounted and its place left however it ends (the browser left, the notifier
    ended it, the key was revoked, or it was never served)."""

    tab: Tab
    headers: list[tuple[bytes, bytes]]
    streams: OpenStreams
    key_id: UUID | None
    _closed: bool = field(default=False, init=False, repr=False)

    async def serve(self, receive: Receive, send: Send) -> None:
        try:
            await send_frames(receive, send, self.headers, self.tab.frames())
        finally:
            await self.aclose()

    async def aclose(self) -> None:
        if self._closed:
            return
        self._closed = True
        self.streams.close(self.key_id, self.tab)
        self.tab.leave()
