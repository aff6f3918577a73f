"""Annotated dependencies: the context, and who is calling.

All `async def`, though none awaits: FastAPI runs a plain `def` dependency in a worker
thread, a thread hop per request (measured: about a fifth of a webhook's cost) for a
dictionary lookup."""

from __future__ import annotations

from typing import Annotated
from uuid import UUID

from fastapi import Depends, Request

from imagetron_gateway.context import GatewayContext
from imagetron_gateway.domain.identity import User


async def get_context(request: Request) -> GatewayContext:
    ctx: GatewayContext = request.state.context
    return ctx


Context = Annotated[GatewayContext, Depends(get_context)]


async def current_user(request: Request) -> User:
    """Identified by the request guard (`guard.py`) before the body was read."""
    caller: User = request.state.caller
    return caller


CurrentUser = Annotated[User, Depends(current_user)]
#: The event stream's caller: the same, also identified by an events token or cookie.
EventsOwner = CurrentUser


async def caller_key(request: Request) -> UUID | None:
    """The API key behind the request (directly, or through a session or events token)."""
    key_id: UUID | None = request.state.key_id
    return key_id


CallerKey = Annotated[UUID | None, Depends(caller_key)]
