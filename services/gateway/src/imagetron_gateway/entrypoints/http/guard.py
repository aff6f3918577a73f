"""What every request meets before any route reads its body: a content type the route can
read, a bounded body, an authenticated caller (for `/api/v1`) and the rate limits. (Provider
callbacks are answered before it, by `webhooks.WebhookReceiver`, which checks their bodies
with `check_body` and their credentials before reading them.)

Plain ASGI middleware rather than FastAPI dependencies: FastAPI reads and parses the body
before it resolves dependencies, and a refusal here must cost no body read at all."""

from __future__ import annotations

import email.message
import functools
import re

from fastapi import Request
from starlette.datastructures import Headers
from starlette.middleware.body_limit import RequestBodyLimitResponder
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from imagetron_gateway.context import GatewayContext
from imagetron_gateway.domain.identity import Caller
from imagetron_gateway.entrypoints.http.session import SESSION_PATH, session_caller, session_token
from imagetron_platform.clock import utcnow
from imagetron_platform.errors import (
    PayloadTooLarge,
    ProblemError,
    TooManyRequests,
    Unauthorized,
    UnsupportedMediaType,
)
from imagetron_platform.event_stream import bearer_token, browser_events_token
from imagetron_platform.events_tokens import verify_events_token
from imagetron_platform.http import problem_response

#: Paths that are not the API: health, metrics, and the studio's static files (its page is
#: `/`; a first visit loads a score of small files, all cached afterwards).
UNLIMITED_PREFIXES = ("/livez", "/readyz", "/metrics", "/studio/")
STUDIO_PAGE = "/"
#: Small pictures a page shows by the hundred: their own, larger budget.
PICTURES = re.compile(r"^/api/v1/(images/[^/]+/thumbnail|tasks/[^/]+/preview)$")
API_PREFIX = "/api/v1/"
BODY_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})

EVENTS_PATH = "/api/v1/events"


class RequestGuard:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if (
            scope["type"] != "http"
            or scope["path"].startswith(UNLIMITED_PREFIXES)
            or scope["path"] == STUDIO_PAGE
        ):
            await self.app(scope, receive, send)
            return
        request = Request(scope)
        ctx: GatewayContext = request.state.context
        headers = Headers(scope=scope)
        limit = ctx.settings.max_body_bytes
        rate_headers: dict[str, str] = {}
        try:
            check_body(scope["method"], headers, limit)
            caller: Caller | None = None
            if scope["path"].startswith(API_PREFIX) and scope["path"] != SESSION_PATH:
                try:
                    caller = await identify(request, ctx)
                except Unauthorized:
                    # Failed attempts count against the address: guessing keys is as
                    # limited as anything else anonymous.
                    await _limit(ctx, "per-address", _address(scope))
                    raise
                pictures = scope["method"] == "GET" and PICTURES.match(scope["path"])
                policy = "per-key-pictures" if pictures else "per-key"
                rate_headers = await _limit(ctx, policy, str(caller.user.id))
            else:
                rate_headers = await _limit(ctx, "per-address", _address(scope))
        except ProblemError as exc:
            exc.headers = {**rate_headers, **exc.headers}
            await problem_response(exc, request)(scope, receive, send)
            return
        scope["state"]["caller"] = None if caller is None else caller.user
        scope["state"]["key_id"] = None if caller is None else caller.key_id
        extra = [(k.lower().encode(), v.encode()) for k, v in rate_headers.items()]
        # For a stream, which is served after this guard has returned (events.py).
        scope["state"]["rate_headers"] = extra

        async def send_with_rate_headers(message: Message) -> None:
            if message["type"] == "http.response.start" and extra:
                message = {**message, "headers": [*message.get("headers", []), *extra]}
            await send(message)

        # Counts the body as it streams in, whatever Content-Length claimed (413 past it).
        await RequestBodyLimitResponder(self.app, limit)(scope, receive, send_with_rate_headers)


def check_body(method: str, headers: Headers, limit: int) -> None:
    declared = headers.get("content-length")
    has_body = (declared is not None and declared != "0") or "transfer-encoding" in headers
    if not has_body:
        return
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise PayloadTooLarge(f"The request body is {declared} bytes; this route takes {limit}.")
    if method in BODY_METHODS and not _is_json(headers.get("content-type")):
        raise UnsupportedMediaType("Send the body as JSON (`Content-Type: application/json`).")


@functools.lru_cache(maxsize=64)
def _is_json(content_type: str | None) -> bool:
    # Parsed with the standard library's header parser (parameters, case, quoting); the
    # few distinct values clients send are parsed once.
    if not content_type:
        return False
    message = email.message.Message()
    message["content-type"] = content_type
    subtype = message.get_content_subtype()
    return message.get_content_maintype() == "application" and (
        subtype == "json" or subtype.endswith("+json")
    )


async def identify(request: Request, ctx: GatewayContext) -> Caller:
    """The caller of an `/api/v1` request: its bearer API key, else the browser's session
    cookie (with its CSRF token on writes), or on the event stream (for EventSource, which
    cannot send headers) an events token in `token` or the events cookie."""
    key = bearer_token(request)
    if key is None and (session := session_token(request)) is not None:
        return await session_caller(request, ctx, session)
    if key is None and request.url.path.rstrip("/") == EVENTS_PATH:
        token = browser_events_token(request)
        if token is not None:
            return await _events_token_owner(ctx, token)
    return await ctx.authenticator.authenticate(key)


async def _events_token_owner(ctx: GatewayContext, token: str) -> Caller:
    """A token is good while its key is: revoked, expired or of a disabled user, it is not."""
    claims = verify_events_token(ctx.settings.events_token_secret.get_secret_value(), token)
    if claims is None or claims.key_id is None:
        raise Unauthorized("The events token is invalid or expired; request a new one.")
    async with ctx.identity_uow() as uow:
        found = await uow.keys.active_by_id(claims.key_id, utcnow())
    if found is None or found[0].id != claims.owner_id:
        raise Unauthorized("The events token's API key no longer works; sign in again.")
    return Caller(user=found[0], key_id=claims.key_id)


def _address(scope: Scope) -> str:
    client = scope.get("client")
    return client[0] if client else "unknown"


async def _limit(ctx: GatewayContext, policy: str, who: str) -> dict[str, str]:
    decision = await ctx.rate_limits.hit(policy, who)
    if not decision.allowed:
        raise TooManyRequests(
            f"Too many requests ({decision.limit} per {decision.window_seconds} s "
            f"{policy.replace('-', ' ')}); retry in {decision.reset_seconds} s.",
            headers=decision.headers(),
        )
    return decision.headers()
