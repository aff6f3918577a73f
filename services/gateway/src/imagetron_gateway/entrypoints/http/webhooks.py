"""Provider callbacks: verify, publish durably to JetStream, then answer.

One route per provider, `POST /webhooks/<provider>/{task_id}`, made from its verifier (the
`WebhookVerifier` port; `adapters/webhooks` has one per provider): the credentials that
need no body are checked before the body is read, then what covers the body (a signature),
and nothing is written or published before every check passed. A 2xx is sent only after
the WEBHOOKS stream acknowledged the message, so an accepted callback cannot be lost; if
NATS is down the provider gets a 503 and retries. The message id is the verifier's delivery
id (a signed id, or the body's hash), so a provider's retry is stored once. What is
published is the body without the credentials of ours the provider echoed in it."""

from __future__ import annotations

import json
import logging
from collections.abc import Iterable
from typing import Any, Protocol
from uuid import UUID

from fastapi import APIRouter, Request
from fastapi.responses import Response

from imagetron_contracts.models.common import WebhookAccepted
from imagetron_contracts.models.images import ProviderCallback
from imagetron_gateway.app.ports import WebhookParameter, WebhookRequest
from imagetron_gateway.entrypoints.http.deps import Context
from imagetron_gateway.entrypoints.http.problems import problems
from imagetron_platform.clock import utcnow
from imagetron_platform.errors import InvalidRequest, ServiceUnavailable

log = logging.getLogger(__name__)
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


class DocumentedVerifier(Protocol):
    """What a route is made from: the provider and the credentials it documents."""

    @property
    def provider(self) -> str: ...

    @property
    def parameters(self) -> tuple[WebhookParameter, ...]: ...


def webhook_router(verifiers: Iterable[DocumentedVerifier]) -> APIRouter:
    router = APIRouter(prefix="/webhooks")
    for verifier in verifiers:
        _add_route(router, verifier)
    return router


def _add_route(router: APIRouter, verifier: DocumentedVerifier) -> None:
    provider = verifier.provider

    async def receive(task_id: UUID, request: Request, ctx: Context) -> Response:
        await _accept(ctx, request, provider, task_id)
        return Response(ACCEPTED, media_type="application/json")

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
        f"/{provider}/{{task_id:id}}",
        receive,
        methods=["POST"],
        response_model=WebhookAccepted,
        operation_id=f"receive{provider.title().replace('_', '')}Webhook",
        name=f"receive_{provider}_webhook",
        tags=["webhooks"],
        responses=problems(401, 404, 422, 503),
        openapi_extra={**JSON_OBJECT_BODY, "parameters": parameters},
    )


async def _accept(ctx: Context, request: Request, provider: str, task_id: UUID) -> None:
    verifier = ctx.webhooks[provider]
    webhook = WebhookRequest(provider, task_id, request.headers, request.query_params)
    verifier.check(webhook)
    # Bounded by the request guard: past `webhook_max_bytes` it is a 413 while it streams.
    raw = await request.body()
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
