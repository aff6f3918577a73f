"""The gateway's composition root."""

from __future__ import annotations

import contextlib
import json
import logging
import resource
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from datetime import timedelta
from importlib import resources
from typing import Any

import httpx
from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi
from fastapi.responses import HTMLResponse, JSONResponse
from faststream.nats import NatsBroker
from starlette.middleware import Middleware
from starlette.staticfiles import StaticFiles

from imagetron_gateway.adapters.callbacks import JetStreamCallbackSink
from imagetron_gateway.adapters.identity import SqlIdentityUnitOfWork
from imagetron_gateway.adapters.notifier_streams import NotifierStreams
from imagetron_gateway.adapters.rate_limits import RequestRateLimits
from imagetron_gateway.adapters.revocations import (
    NatsKeyRevocations,
    OpenStreams,
    listen_for_revocations,
)
from imagetron_gateway.adapters.shared_streams import SharedStreams
from imagetron_gateway.adapters.webhooks import VERIFIERS, webhook_verifiers
from imagetron_gateway.app.budgets import DailyBudgets, Spend
from imagetron_gateway.app.idempotency import IdempotentRequests
from imagetron_gateway.app.identity import (
    Authenticator,
    ensure_bootstrap_admin,
    remove_expired_sessions,
)
from imagetron_gateway.app.ports import IdentityUnitOfWork
from imagetron_gateway.context import GatewayContext, GatewayState
from imagetron_gateway.entrypoints.http import (
    chats,
    events,
    events_token,
    images,
    keys,
    prompts,
    publications,
    session,
    studio,
    tasks,
    users,
    webhooks,
)
from imagetron_gateway.entrypoints.http.guard import RequestGuard
from imagetron_gateway.entrypoints.http.problems import guard_responses, problem_media_type
from imagetron_gateway.settings import GatewaySettings
from imagetron_platform.event_stream import StreamsOutsideTheRoute
from imagetron_platform.lifecycle import ServiceLifecycle
from imagetron_platform.messaging import AcknowledgedPublisher, make_broker
from imagetron_platform.rpc import RpcClient

log = logging.getLogger(__name__)
SERVICE = "gateway"
#: How often expired browser sessions, expired Idempotency-Keys and the budgets of days
#: before yesterday are deleted (each job until none is left, a batch per transaction).
SESSION_PRUNE_SECONDS = 3600.0
#: How often the keys' `last_used_at` is written (uses are gathered in memory meanwhile).
KEY_USE_FLUSH_SECONDS = 30.0
#: A notifier that does not accept a connection this fast is answered as unavailable.
NOTIFIER_CONNECT_SECONDS = 5.0
#: Open files kept for everything but event streams (NATS, PostgreSQL, API requests).
EVENT_STREAM_FD_RESERVE = 256


def contract_openapi() -> dict[str, Any]:
    """The bundled `contracts/openapi.yaml`: what `/openapi.json` serves."""
    text = resources.files("imagetron_contracts.documents").joinpath("openapi.json").read_text()
    doc: dict[str, Any] = json.loads(text)
    return doc


def build_broker(settings: GatewaySettings) -> NatsBroker:
    """The gateway only publishes and requests: no subscribers."""
    return make_broker(settings, SERVICE)


def create_app(settings: GatewaySettings | None = None) -> FastAPI:
    settings = settings or GatewaySettings()
    lifecycle, database = ServiceLifecycle.with_database(SERVICE, settings)
    broker = lifecycle.broker

    def identity_uow() -> SqlIdentityUnitOfWork:
        return SqlIdentityUnitOfWork(database.session_factory)

    async def prune_sessions() -> None:
        removed = await remove_expired_sessions(identity_uow())
        if removed:
            log.info("removed %d expired browser sessions", removed)

    lifecycle.every("expired sessions", SESSION_PRUNE_SECONDS, prune_sessions)
    idempotency = idempotent_requests(settings, identity_uow)
    lifecycle.every("expired idempotency keys", SESSION_PRUNE_SECONDS, idempotency.remove_expired)
    budgets = daily_budgets(settings, identity_uow)
    lifecycle.every("past days' budgets", SESSION_PRUNE_SECONDS, budgets.remove_past_days)
    authenticator = Authenticator(identity_uow, settings.api_key_cache_seconds)
    streams = OpenStreams()
    lifecycle.every("key uses", KEY_USE_FLUSH_SECONDS, authenticator.record_uses)
    lifecycle.background(
        "key revocations", lambda: listen_for_revocations(broker, authenticator, streams)
    )

    @asynccontextmanager
    async def state() -> AsyncIterator[GatewayState]:
        if settings.bootstrap_api_key is not None:
            created = await ensure_bootstrap_admin(
                identity_uow(),
                settings.bootstrap_admin_name,
                settings.bootstrap_api_key.get_secret_value(),
            )
            if created is not None:
                log.info("created the bootstrap admin %s", created[0].id)
        # Known once the server runs (it raises the process's open-file limit first).
        streams.limit = settings.max_event_streams
        streams.connection_limit = event_stream_connections()
        shared_streams = SharedStreams(streams)
        async with (
            httpx.AsyncClient(
                timeout=httpx.Timeout(10.0, read=None), follow_redirects=False
            ) as http,
            contextlib.aclosing(shared_streams),
        ):
            yield GatewayState(
                context=GatewayContext(
                    settings=settings,
                    rpc=RpcClient(broker, timeout=settings.rpc_timeout_seconds),
                    callbacks=JetStreamCallbackSink(AcknowledgedPublisher(broker, SERVICE)),
                    authenticator=authenticator,
                    identity_uow=identity_uow,
                    revocations=NatsKeyRevocations(broker),
                    streams=streams,
                    http=http,
                    notifier=NotifierStreams(connect_timeout=NOTIFIER_CONNECT_SECONDS),
                    shared_streams=shared_streams,
                    rate_limits=rate_limits(settings),
                    budgets=budgets,
                    idempotency=idempotency,
                    webhooks=webhook_verifiers(settings),
                )
            )

    return api_app(
        lifecycle.app(
            title="Imagetron API", state=state, metrics_access=settings.metrics_access(public=True)
        )
    )


def event_stream_connections() -> int:
    """How many connections event streams may hold: what the open-file limit allows, less
    `EVENT_STREAM_FD_RESERVE` for everything else."""
    soft, _ = resource.getrlimit(resource.RLIMIT_NOFILE)
    return max(2, soft - EVENT_STREAM_FD_RESERVE)


def daily_budgets(
    settings: GatewaySettings, uow_factory: Callable[[], IdentityUnitOfWork]
) -> DailyBudgets:
    return DailyBudgets(
        uow_factory,
        {
            Spend.llm_calls: settings.llm_calls_per_day,
            Spend.generations: settings.generations_per_day,
        },
    )


def idempotent_requests(
    settings: GatewaySettings, uow_factory: Callable[[], IdentityUnitOfWork]
) -> IdempotentRequests:
    return IdempotentRequests(
        uow_factory,
        ttl=timedelta(seconds=settings.idempotency_key_ttl_seconds),
        lock=timedelta(seconds=settings.idempotency_lock_seconds),
    )


def rate_limits(settings: GatewaySettings) -> RequestRateLimits:
    return RequestRateLimits(
        per_key=settings.rate_limit_per_key,
        per_address=settings.rate_limit_per_address,
        pictures_per_key=settings.rate_limit_pictures_per_key,
        window_seconds=settings.rate_limit_window_seconds,
    )


DOCS_PAGE = """<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<title>Imagetron API</title>
<link rel="stylesheet" href="/docs/assets/swagger-ui.css">
</head>
<body>
<div id="swagger-ui"></div>
<script src="/docs/assets/swagger-ui-bundle.js"></script>
<script src="/docs/assets/init.js"></script>
</body>
</html>
"""


def api_app(app: FastAPI) -> FastAPI:
    """The public API on a service app: every router, the contract at `/openapi.json` and
    the docs. Tests put it on an app whose lifespan yields fakes of the ports."""
    app.version = "0.1.0"
    for module in (
        session,
        users,
        keys,
        prompts,
        chats,
        tasks,
        images,
        publications,
        events_token,
        events,
    ):
        app.include_router(module.router)
    # Innermost (appended, not added on top): their answers still pass through the
    # platform's metrics, security headers and correlation ids. Providers' callbacks are
    # answered before the API's guard and router (webhooks.py says why).
    providers = [verifier.provider for verifier in VERIFIERS]
    app.user_middleware.append(Middleware(webhooks.WebhookReceiver, providers=providers))
    # Event streams are served once the guard and the routing have returned (events.py).
    app.user_middleware.append(Middleware(StreamsOutsideTheRoute))
    app.user_middleware.append(Middleware(RequestGuard))
    callbacks = webhooks.webhook_operations(VERIFIERS)

    def openapi() -> dict[str, Any]:
        # What FastAPI derives from the routes and the callbacks' declared operations; the
        # contract test compares it with the document, which is what `/openapi.json` serves.
        if app.openapi_schema is None:
            derived = get_openapi(
                title=app.title, version=app.version, routes=[*callbacks.routes, *app.routes]
            )
            app.openapi_schema = guard_responses(problem_media_type(derived))
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]

    document = contract_openapi()

    @app.get("/openapi.json", include_in_schema=False)
    async def openapi_document() -> JSONResponse:
        return JSONResponse(document)

    @app.get("/docs", include_in_schema=False)
    async def docs() -> HTMLResponse:
        return HTMLResponse(DOCS_PAGE)

    # Vendored (swagger_ui/README.md): no CDN, and nothing inline for the page policy.
    app.mount(
        "/docs/assets",
        StaticFiles(packages=[("imagetron_gateway", "swagger_ui")]),
        name="docs-assets",
    )

    # The studio, on the same origin as the API and the event stream.
    app.include_router(studio.router)
    app.mount("/studio", studio.files, name="studio")
    return app
