"""Tokens for the browser's event stream (the stream itself: events.py).

Operation ids, paths, parameters and models follow `contracts/openapi.yaml`; a contract
test compares the generated OpenAPI with the document."""

from __future__ import annotations

from datetime import UTC, datetime

from fastapi import APIRouter
from imagetron_contracts.models.identity import EventsToken
from imagetron_platform.events_tokens import issue_events_token

from imagetron_gateway.entrypoints.http.deps import Context, CurrentUser
from imagetron_gateway.entrypoints.http.problems import problems

router = APIRouter(prefix="/api/v1")


@router.post(
    "/events/token",
    status_code=201,
    operation_id="createEventsToken",
    responses=problems(401),
    tags=["events"],
)
async def create_events_token(caller: CurrentUser, ctx: Context) -> EventsToken:
    token, expires_at = issue_events_token(
        ctx.settings.events_token_secret.get_secret_value(),
        caller.id,
        ctx.settings.events_token_ttl_seconds,
    )
    return EventsToken(token=token, expires_at=datetime.fromtimestamp(expires_at, UTC))
