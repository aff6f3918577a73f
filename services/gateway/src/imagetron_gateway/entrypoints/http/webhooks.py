"""Provider callbacks: verify, publish durably to JetStream, then answer.

Nothing is written or published before every credential checks out, and a 2xx is sent only
after the WEBHOOKS stream acknowledged the message, so an accepted callback cannot be lost;
if NATS is down the provider gets a 503 and retries.

Credentials per provider, all compared in constant time:
- GoAPI: the shared secret echoed in `x-webhook-secret` + the per-task `token` in the URL.
- midjourney-proxy: it POSTs to `notifyHook` with no header of ours, so the shared secret
  travels in the URL (`secret`) next to the per-task `token`.
- Replicate: a Standard Webhooks signature (`webhook-id`/`-timestamp`/`-signature`, HMAC
  over `id.timestamp.body`, 5 minutes of tolerance) + the per-task `token`, because the
  signature covers the body and not the task id in the URL."""

from __future__ import annotations

import hashlib
import json
import logging
from typing import Annotated, Any
from uuid import UUID

from fastapi import APIRouter, Header, Query, Request
from standardwebhooks import Webhook

from imagetron_contracts.models.common import WebhookAccepted
from imagetron_contracts.models.images import ProviderCallback
from imagetron_gateway.entrypoints.http.deps import Context
from imagetron_gateway.entrypoints.http.problems import problems
from imagetron_platform.clock import utcnow
from imagetron_platform.errors import InvalidRequest, ServiceUnavailable, Unauthorized
from imagetron_platform.webhook_tokens import secrets_match, verify_webhook_token

log = logging.getLogger(__name__)
router = APIRouter(prefix="/webhooks")
#: Callbacks are read as raw bytes (to verify them as sent), so the body is documented here.
JSON_OBJECT_BODY = {
    "requestBody": {
        "required": True,
        "content": {"application/json": {"schema": {"type": "object"}}},
    }
}

MIDJOURNEY_PROXY = "midjourney_proxy"
REPLICATE = "replicate"


@router.post(
    "/goapi/{task_id:id}",
    operation_id="receiveGoapiWebhook",
    tags=["webhooks"],
    responses=problems(401, 422, 503),
    openapi_extra=JSON_OBJECT_BODY,
)
async def receive_goapi_webhook(
    task_id: UUID,
    request: Request,
    ctx: Context,
    token: Annotated[str | None, Query()] = None,
    x_webhook_secret: Annotated[str | None, Header(alias="x-webhook-secret")] = None,
) -> WebhookAccepted:
    # Same bytes from a retrying provider → same id → stored once.
    return await _accept_shared_secret_callback(
        ctx, request, "goapi", task_id, token, x_webhook_secret
    )


@router.post(
    "/midjourney_proxy/{task_id:id}",
    operation_id="receiveMidjourneyProxyWebhook",
    tags=["webhooks"],
    responses=problems(401, 422, 503),
    openapi_extra=JSON_OBJECT_BODY,
)
async def receive_midjourney_proxy_webhook(
    task_id: UUID,
    request: Request,
    ctx: Context,
    token: Annotated[str | None, Query()] = None,
    secret: Annotated[str | None, Query()] = None,
) -> WebhookAccepted:
    # The proxy sends the whole task on every change: a new state is a new body.
    return await _accept_shared_secret_callback(
        ctx, request, MIDJOURNEY_PROXY, task_id, token, secret
    )


@router.post(
    "/replicate/{task_id:id}",
    operation_id="receiveReplicateWebhook",
    tags=["webhooks"],
    responses=problems(401, 422, 503),
    openapi_extra=JSON_OBJECT_BODY,
)
async def receive_replicate_webhook(
    task_id: UUID,
    request: Request,
    ctx: Context,
    token: Annotated[str | None, Query()] = None,
    webhook_id: Annotated[str | None, Header(alias="webhook-id")] = None,
    webhook_timestamp: Annotated[str | None, Header(alias="webhook-timestamp")] = None,
    webhook_signature: Annotated[str | None, Header(alias="webhook-signature")] = None,
) -> WebhookAccepted:
    settings = ctx.settings
    token_ok = verify_webhook_token(
        settings.webhook_token_key.get_secret_value(), REPLICATE, task_id, token
    )
    signing_secret = settings.replicate_webhook_secret
    if not token_ok or signing_secret is None or not (webhook_id and webhook_timestamp):
        log.warning("rejected replicate webhook", extra={"task_id": str(task_id)})
        raise Unauthorized("The webhook's signature or token is not valid.")
    raw = await _read_limited(request, settings.webhook_max_bytes)
    headers = {
        "webhook-id": webhook_id,
        "webhook-timestamp": webhook_timestamp,
        "webhook-signature": webhook_signature or "",
    }
    if not _signature_ok(signing_secret.get_secret_value(), raw, headers):
        log.warning("rejected replicate webhook signature", extra={"task_id": str(task_id)})
        raise Unauthorized("The webhook's signature or token is not valid.")
    # `webhook-id` is signed and stays the same when Replicate retries a delivery.
    await _publish(ctx, REPLICATE, task_id, raw, f"{REPLICATE}:{webhook_id}")
    return WebhookAccepted(status="accepted")


def _signature_ok(secret: str, raw: bytes, headers: dict[str, str]) -> bool:
    """Standard Webhooks: any `v1,<base64>` entry may match (key rotation); the timestamp
    must be within 5 minutes of now. The library raises more than its own error on
    malformed headers or bodies, and every failure means the same thing here."""
    try:
        Webhook(secret).verify(raw, headers, json_parse=False)
    except Exception:
        return False
    return True


async def _publish(ctx: Context, provider: str, task_id: UUID, raw: bytes, dedupe_id: str) -> None:
    body = _json_object(raw)
    callback = ProviderCallback(provider=provider, task_id=task_id, received_at=utcnow(), body=body)
    try:
        await ctx.callbacks.accept(callback, dedupe_id)
    except Exception as exc:
        log.exception("could not publish %s webhook", provider)
        raise ServiceUnavailable("The callback could not be stored; please retry.") from exc


async def _accept_shared_secret_callback(
    ctx: Context,
    request: Request,
    provider: str,
    task_id: UUID,
    token: str | None,
    given_secret: str | None,
) -> WebhookAccepted:
    """For providers that sign nothing: the shared secret they echo and our per-task token,
    both compared in constant time before anything is read further; the message id is the
    body's hash, so a provider's retry of the same delivery is stored once."""
    settings = ctx.settings
    secret_ok = secrets_match(settings.webhook_secret.get_secret_value(), given_secret)
    token_ok = verify_webhook_token(
        settings.webhook_token_key.get_secret_value(), provider, task_id, token
    )
    if not (secret_ok and token_ok):
        log.warning("rejected %s webhook", provider, extra={"task_id": str(task_id)})
        raise Unauthorized("The webhook's secret or token is not valid.")
    raw = await _read_limited(request, settings.webhook_max_bytes)
    await _publish(ctx, provider, task_id, raw, f"{provider}:" + hashlib.sha256(raw).hexdigest())
    return WebhookAccepted(status="accepted")


async def _read_limited(request: Request, limit: int) -> bytes:
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise InvalidRequest(f"The webhook body exceeds {limit} bytes.")
        chunks.append(chunk)
    return b"".join(chunks)


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
