"""Annotated dependencies: the context, and who is calling."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request

from imagetron_gateway.context import GatewayContext
from imagetron_gateway.domain.identity import User
from imagetron_platform.errors import Unauthorized
from imagetron_platform.events_tokens import EVENTS_COOKIE, verify_events_token


def get_context(request: Request) -> GatewayContext:
    ctx: GatewayContext = request.state.context
    return ctx


Context = Annotated[GatewayContext, Depends(get_context)]


def _bearer(request: Request) -> str | None:
    # Read from the request, not declared as a parameter: the contract documents it as the
    # `apiKey` security scheme, not as a header parameter.
    scheme, _, value = request.headers.get("authorization", "").partition(" ")
    return value.strip() or None if scheme.lower() == "bearer" else None


async def current_user(request: Request, ctx: Context) -> User:
    return await ctx.authenticator.authenticate(_bearer(request))


CurrentUser = Annotated[User, Depends(current_user)]


async def events_owner(request: Request, ctx: Context) -> User:
    """The bearer key, or for EventSource the `token` query parameter or the events cookie."""
    token = request.query_params.get("token")
    if token is None and _bearer(request) is None:
        token = request.cookies.get(EVENTS_COOKIE)
    if token is None:
        return await ctx.authenticator.authenticate(_bearer(request))
    claims = verify_events_token(ctx.settings.events_token_secret.get_secret_value(), token)
    if claims is None:
        raise Unauthorized("The events token is invalid or expired; request a new one.")
    async with ctx.identity_uow() as uow:
        user = await uow.users.by_id(claims.owner_id)
    if user is None:
        raise Unauthorized("The events token's user no longer exists.")
    return user


EventsOwner = Annotated[User, Depends(events_owner)]
