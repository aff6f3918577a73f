"""Browser sessions for the studio: an API key exchanged for an HttpOnly cookie.

Operation ids, paths, parameters and models follow `contracts/openapi.yaml`; a contract
test compares the generated OpenAPI with the document."""

from __future__ import annotations

from datetime import timedelta

from fastapi import APIRouter, Request, Response

from imagetron_contracts.models.identity import Session, SignInRequest
from imagetron_gateway.app import identity
from imagetron_gateway.context import GatewayContext
from imagetron_gateway.domain.identity import (
    BrowserSession,
    Caller,
    User,
    csrf_token_for,
    csrf_token_matches,
)
from imagetron_gateway.entrypoints.http.deps import Context
from imagetron_gateway.entrypoints.http.problems import problems
from imagetron_gateway.entrypoints.http.users import user_model
from imagetron_platform.errors import Unauthorized

router = APIRouter(prefix="/api/v1")

#: The browser session's cookie.
SESSION_COOKIE = "imagetron_session"
#: Writes made with the session cookie carry the session's CSRF token in this header.
CSRF_HEADER = "X-CSRF-Token"
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
#: Where a browser signs in and out: open to requests without credentials.
SESSION_PATH = "/api/v1/session"


def session_token(request: Request) -> str | None:
    return request.cookies.get(SESSION_COOKIE) or None


def require_csrf(request: Request, token: str) -> None:
    """A write with the session cookie must prove it comes from our own page. SameSite=Strict
    already keeps the cookie off other sites' requests; this holds without it too."""
    if not csrf_token_matches(token, request.headers.get(CSRF_HEADER)):
        raise Unauthorized(
            f"A change made with the session cookie needs the session's `{CSRF_HEADER}` "
            "header (GET /api/v1/session has it); reload the page if this persists."
        )


async def session_caller(request: Request, ctx: GatewayContext, token: str) -> Caller:
    """The user of a request made with the session cookie (and, for a write, its token)."""
    if request.method not in SAFE_METHODS:
        require_csrf(request, token)
    user, session = await identity.session_user(ctx.identity_uow(), token)
    return Caller(user=user, key_id=session.key_id)


def _session(user: User, token: str, session: BrowserSession) -> Session:
    return Session(
        user=user_model(user),
        csrf_token=csrf_token_for(token),
        expires_at=session.expires_at,
    )


@router.post(
    "/session",
    status_code=201,
    operation_id="signIn",
    responses=problems(401, 422),
    tags=["session"],
)
async def sign_in(body: SignInRequest, ctx: Context, response: Response) -> Session:
    settings = ctx.settings
    ttl = timedelta(seconds=settings.session_ttl_seconds)
    signed_in = await identity.sign_in(
        ctx.identity_uow(), body.api_key, ttl=ttl, max_sessions=settings.max_sessions_per_user
    )
    response.set_cookie(
        SESSION_COOKIE,
        signed_in.token,
        max_age=settings.session_ttl_seconds,
        path="/",
        httponly=True,
        samesite="strict",
        secure=settings.session_cookie_secure,
    )
    return _session(signed_in.user, signed_in.token, signed_in.session)


@router.get("/session", operation_id="getSession", responses=problems(401), tags=["session"])
async def get_session(request: Request, ctx: Context) -> Session:
    token = session_token(request)
    if token is None:
        raise Unauthorized("Not signed in: POST /api/v1/session with an API key.")
    user, session = await identity.session_user(ctx.identity_uow(), token)
    return _session(user, token, session)


@router.delete(
    "/session",
    status_code=204,
    response_class=Response,
    operation_id="signOut",
    responses=problems(401),
    tags=["session"],
)
async def sign_out(request: Request, ctx: Context) -> Response:
    token = session_token(request)
    if token is not None:
        require_csrf(request, token)
        await identity.sign_out(ctx.identity_uow(), token)
    response = Response(status_code=204)
    response.delete_cookie(
        SESSION_COOKIE,
        path="/",
        httponly=True,
        samesite="strict",
        secure=ctx.settings.session_cookie_secure,
    )
    return response
