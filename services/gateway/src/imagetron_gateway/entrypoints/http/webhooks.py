"""Provider callbacks: verify, publish durably to JetStream, then answer.

Nothing is written or published before both credentials check out, and a 2xx is sent only
after the WEBHOOKS stream acknowledged the message, so an accepted callback cannot be lost;
if NATS is down the provider gets a 503 and retries."""

from __future__ import annotations

import hashlib
import json
import logging
from typing import Annotated, Any
from uuid import UUID

from fastapi import APIRouter, Header, Query, Request

from imagetron_contracts.models.common import WebhookAccepted
from imagetron_contracts.models.images import ProviderCallback
from imagetron_gateway.entrypoints.http.deps import Context
from imagetron_gateway.entrypoints.http.problems import problems
from imagetron_platform.db import utcnow
from imagetron_platform.errors import InvalidRequest, ServiceUnavailable, Unauthorized
from imagetron_platform.webhook_tokens import secrets_match, verify_webhook_token

log = logging.getLogger(__name__)
router = APIRouter(prefix="/webhooks")


@router.post(
    "/goapi/{task_id}",
    operation_id="receiveGoapiWebhook",
    tags=["webhooks"],
    responses=problems(401, 422, 503),
    openapi_extra={
        "requestBody": {
            "required": True,
            "content": {"application/json": {"schema": {"type": "object"}}},
        }
    },
)
async def receive_goapi_webhook(
    task_id: UUID,
    request: Request,
    ctx: Context,
    token: Annotated[str, Query()],
    x_webhook_secret: Annotated[str | None, Header(alias="x-webhook-secret")] = None,
) -> WebhookAccepted:
    settings = ctx.settings
    secret_ok = secrets_match(settings.webhook_secret.get_secret_value(), x_webhook_secret)
    token_ok = verify_webhook_token(
        settings.webhook_token_key.get_secret_value(), "goapi", task_id, token
    )
    if not (secret_ok and token_ok):
        log.warning("rejected goapi webhook", extra={"task_id": str(task_id)})
        raise Unauthorized("The webhook's secret or token is not valid.")
    raw = await _read_limited(request, settings.webhook_max_bytes)
    body = _json_object(raw)
    callback = ProviderCallback(provider="goapi", task_id=task_id, received_at=utcnow(), body=body)
    try:
        # Same bytes from a retrying provider → same id → stored once.
        await ctx.callbacks.accept(callback, "goapi:" + hashlib.sha256(raw).hexdigest())
    except Exception as exc:
        log.exception("could not publish goapi webhook")
        raise ServiceUnavailable("The callback could not be stored; please retry.") from exc
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


def _json_object(raw: bytes) -> dict[str, Any]:
    try:
        body = json.loads(raw)
    except ValueError as exc:
        raise InvalidRequest(f"The webhook body is not JSON: {exc}.") from exc
    if not isinstance(body, dict):
        raise InvalidRequest("The webhook body must be a JSON object.")
    return body
