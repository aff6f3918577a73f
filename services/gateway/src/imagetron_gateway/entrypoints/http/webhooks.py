"""Provider callbacks: verify, publish durably to JetStream, then answer.

`POST /webhooks/<provider>/{task_id}`, one per provider (the `WebhookVerifier` port;
`adapters/webhooks` has one per provider): the credentials that need no body are checked
before the body is read, then what covers the body (a signature), and nothing is written or
published before every check passed. A 2xx is sent only after the WEBHOOKS stream
acknowledged the message, so an accepted callback cannot be lost; if NATS is down the
provider gets a 503 and retries. The message id is the verifier's delivery id (a signed id,
or the body's hash), so a provider's retry is stored once. What is published is the body
without the credentials of ours the provider echoed in it.

Callbacks are the gateway's busiest requests and need none of what the API's routes are
built from (dependencies, request models, response models, the rate limits of API keys),
so `WebhookReceiver` answers them as plain ASGI, inside the platform's middleware (error
rendering, correlation ids, metrics and the log line, security headers) but before the
API's guard and router. Measured (bench/webhooks.py, gateway CPU per accepted callback):
about 1.2 ms through FastAPI's routing, 0.7 ms here. `webhook_operations` describes the same
operations as FastAPI routes for the OpenAPI document, from the same verifiers."""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any, Protocol
from uuid import UUID

from fastapi import APIRouter
from starlette.requests import ClientDisconnect, Request
from starlette.responses import Response
from starlette.types import ASGIApp, Receive, Scope, Send

from imagetron_contracts.models.common import WebhookAccepted
from imagetron_contracts.models.images import ProviderCallback
from imagetron_gateway.app.ports import WebhookParameter, WebhookRequest
from imagetron_gateway.context import GatewayContext
from imagetron_gateway.entrypoints.http.guard import check_body
from imagetron_gateway.entrypoints.http.params import IdConvertor
from imagetron_gateway.entrypoints.http.problems import problems
from imagetron_platform.clock import utcnow
from imagetron_platform.errors import (
    InvalidRequest,
    NotFound,
    PayloadTooLarge,
    ProblemError,
    ServiceUnavailable,
)
from imagetron_platform.http import method_not_allowed, problem_response

log = logging.getLogger(__name__)
PREFIX = "/webhooks/"
#: Callbacks are read as raw bytes (to verify them as sent), so the body is documented here.
JSON_OBJECT_BODY = {
    "requestBody": {
        "required": True,
        "content": {"application/json": {"schema": {"type": "object"}}},
    }
}
PER_TASK_TOKEN_HELP = "The per-task token of the callback URL; missing or wrong is a 401."  # noqa: S105
#: The answer is always the same: encoded once, not validated and serialised per callback.
ACCEPTED = WebhookAccepted(status="accepted").model_dump_json().encode()
#: What a callback can be answered besides its 200 (the 413 and 415 of `check_body` too).
REFUSALS = (401, 404, 422, 503)
_TASK_ID = IdConvertor()
_TASK_ID_PATTERN = re.compile(_TASK_ID.regex)


class DocumentedVerifier(Protocol):
    """What a route is made from: the provider and the credentials it documents."""

    @property
    def provider(self) -> str: ...

    @property
    def parameters(self) -> tuple[WebhookParameter, ...]: ...


@dataclass(frozen=True)
class WebhookRoute:
    """What the platform's metrics read from `scope["route"]`: the path template, so each
    provider's callbacks are one series (`/webhooks/goapi/{task_id:id}`), not one per task."""

    path: str


def route_path(provider: str) -> str:
    return f"{PREFIX}{provider}/{{task_id:id}}"


class WebhookReceiver:
    """Answers every request under `/webhooks/` (a callback, or a 404/405 problem) and
    passes every other request on to `app`. The verifiers are the gateway context's
    (`webhooks`, configured from settings); `providers` are those with a route."""

    def __init__(self, app: ASGIApp, providers: Iterable[str]) -> None:
        self.app = app
        self._routes = {provider: WebhookRoute(route_path(provider)) for provider in providers}

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or not scope["path"].startswith(PREFIX):
            await self.app(scope, receive, send)
            return
        request = Request(scope, receive)
        try:
            await _accept(request, *self._route(scope))
            response = Response(ACCEPTED, media_type="application/json")
        except ProblemError as exc:
            response = problem_response(exc, request)
        except ClientDisconnect:
            return  # nobody is left to answer; nothing was published
        await response(scope, receive, send)

    def _route(self, scope: Scope) -> tuple[str, UUID]:
        provider, _, task_id = scope["path"].removeprefix(PREFIX).partition("/")
        route = self._routes.get(provider)
        if route is None or _TASK_ID_PATTERN.fullmatch(task_id) is None:
            raise NotFound(
                "Not found: callbacks are POSTed to /webhooks/<provider>/<task id>, "
                f"providers: {', '.join(self._routes)}."
            )
        scope["route"] = route
        if scope["method"] != "POST":
            raise method_not_allowed(scope["method"], ["POST"])
        return provider, _TASK_ID.convert(task_id)


async def _accept(request: Request, provider: str, task_id: UUID) -> None:
    ctx: GatewayContext = request.state.context
    limit = ctx.settings.webhook_max_bytes
    check_body(request.method, request.headers, limit)
    verifier = ctx.webhooks[provider]
    webhook = WebhookRequest(provider, task_id, request.headers, request.query_params)
    verifier.check(webhook)
    raw = await _body(request, limit)
    delivery_id = verifier.verify(webhook, raw)
    # Providers echo our credentials (a secret, the callback URL with its token): they
    # are not kept in what is stored.
    body = verifier.scrub(webhook, _json_object(raw))
    callback = ProviderCallback(provider=provider, task_id=task_id, received_at=utcnow(), body=body)
    try:
        await ctx.callbacks.accept(callback, delivery_id)
    except Exception as exc:
        log.exception("could not publish %s webhook", provider)
        raise ServiceUnavailable("The callback could not be stored; please retry.") from exc


async def _body(request: Request, limit: int) -> bytes:
    """The whole body, counted as it streams in whatever Content-Length claimed."""
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise PayloadTooLarge(
                f"The request body is over {limit} bytes, the most this route takes."
            )
        chunks.append(chunk)
    return b"".join(chunks)


def webhook_operations(verifiers: Iterable[DocumentedVerifier]) -> APIRouter:
    """The operations `WebhookReceiver` serves, declared as FastAPI routes for the OpenAPI
    document only (the gateway's `openapi()` adds them; the app never routes to them): the
    path, the provider's credentials as parameters, the answers."""
    router = APIRouter()
    for verifier in verifiers:
        _declare(router, verifier)
    return router


def _declare(router: APIRouter, verifier: DocumentedVerifier) -> None:
    provider = verifier.provider

    async def receive(task_id: UUID) -> WebhookAccepted:
        raise AssertionError(f"{PREFIX}{provider}/{task_id} is answered by WebhookReceiver")

    parameters = [
        {
            "name": p.name,
            "in": p.location,
            "required": False,
            "schema": {"type": "string"},
            **({"description": PER_TASK_TOKEN_HELP} if p.name == "token" else {}),
        }
        for p in verifier.parameters
    ]
    router.add_api_route(
        route_path(provider),
        receive,
        methods=["POST"],
        response_model=WebhookAccepted,
        operation_id=f"receive{provider.title().replace('_', '')}Webhook",
        name=f"receive_{provider}_webhook",
        tags=["webhooks"],
        responses=problems(*REFUSALS),
        openapi_extra={**JSON_OBJECT_BODY, "parameters": parameters},
    )


#: Provider payloads are a few levels deep; anything far deeper is not one.
MAX_JSON_DEPTH = 32


def _json_object(raw: bytes) -> dict[str, Any]:
    try:
        body = json.loads(raw)
    except RecursionError as exc:  # the C parser stops at the interpreter's depth, cleanly
        raise InvalidRequest(f"The webhook body is nested deeper than {MAX_JSON_DEPTH}.") from exc
    except ValueError as exc:
        raise InvalidRequest(f"The webhook body is not UTF-8 JSON: {exc}.") from exc
    if not isinstance(body, dict):
        raise InvalidRequest("The webhook body must be a JSON object.")
    if json_depth(body) > MAX_JSON_DEPTH:
        raise InvalidRequest(f"The webhook body is nested deeper than {MAX_JSON_DEPTH}.")
    return body


def json_depth(value: Any) -> int:
    """How deeply a decoded JSON value nests (iteratively: no recursion to exhaust)."""
    deepest, stack = 0, [(value, 1)]
    while stack:
        node, depth = stack.pop()
        children = (
            node.values() if isinstance(node, dict) else node if isinstance(node, list) else ()
        )
        if children:
            deepest = max(deepest, depth)
            stack.extend((child, depth + 1) for child in children)
    return deepest
