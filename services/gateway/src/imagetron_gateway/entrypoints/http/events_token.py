"""Tokens for the browser's event stream (the stream itself: events.py).

Operation ids, paths, parameters and models follow `contracts/openapi.yaml`; a contract
test compares the generated OpenAPI with the document."""

from __future__ import annotations

from datetime import UTC, datetime

from fastapi import APIRouter, Response

from imagetron_contracts.models.identity import EventsToken
from imagetron_gateway.entrypoints.http.deps import CallerKey, Context, CurrentUser
from imagetron_gateway.entrypoints.http.problems import problems
from imagetron_platform.events_tokens import EVENTS_COOKIE, issue_events_token

router = APIRouter(prefix="/api/v1")


@router.post(
    "/events/token",
    status_code=201,
    operation_id="createEventsToken",
    responses=problems(401),
    tags=["events"],
)
async def create_events_token(
    caller: CurrentUser, key_id: CallerKey, ctx: Context, response: Response
) -> EventsToken:
    ttl = ctx.settings.events_token_ttl_seconds
    # Bound to the caller's key: revoking the key ends the token and its streams.
    token, expires_at = issue_events_token(
        ctx.settings.events_token_secret.get_secret_value(), caller.id, ttl, key_id=key_id
    )
    # The same token as a cookie scoped to the stream, so a same-origin EventSource needs no
    # query parameter (and the token stays out of URLs and access logs).
    response.set_cookie(
        EVENTS_COOKIE,
        token,
        max_age=ttl,
        path="/api/v1/events",
        httponly=True,
        samesite="strict",
        secure=ctx.settings.events_cookie_secure,
    )
    return EventsToken(token=token, expires_at=datetime.fromtimestamp(expires_at, UTC))
