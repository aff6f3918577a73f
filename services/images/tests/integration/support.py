"""What the images integration tests share: the stand-ins' credentials, a fast sandbox, and
a gateway stand-in that verifies and forwards provider callbacks."""

from __future__ import annotations

import hashlib
import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any
from uuid import UUID

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse
from faststream.nats import NatsBroker

from imagetron_contracts.models.images import ProviderCallback
from imagetron_contracts.models.prompts import (
    GenerationReservation,
    GenerationState,
    Prompt,
    PromptStatus,
)
from imagetron_contracts.streams import (
    RPC_PROMPTS_GENERATION_RELEASE,
    RPC_PROMPTS_GENERATION_RESERVE,
    WEBHOOKS_GOAPI,
    WEBHOOKS_MIDJOURNEY_PROXY,
)
from imagetron_platform.clock import utcnow
from imagetron_platform.rpc import rpc_handler
from imagetron_platform.webhook_tokens import secrets_match, verify_webhook_token

GOAPI_KEY = "it-goapi-key"
WEBHOOK_SECRET = "it-webhook-secret"
TOKEN_KEY = "it-token-key"
SANDBOX_FAST = {
    "pending_ms": 50,
    "progress_interval_ms": 50,
    "webhook_backoff_ms": 50,
    "grid_long_side": 256,
    "upscale_long_side": 512,
}


@dataclass
class GatewayStandIn:
    """What the gateway does with a provider callback: verify the per-task token (and
    GoAPI's shared secret), then publish it on `webhooks.<provider>` (Nats-Msg-Id = hash of
    the body). With `forward` off it only records, and the test delivers callbacks itself."""

    broker: NatsBroker
    forward: bool = False
    received: list[dict[str, Any]] = field(default_factory=list)

    def app(self) -> FastAPI:
        app = FastAPI()

        @app.post("/webhooks/goapi/{task_id}")
        async def receive(task_id: UUID, token: str, request: Request) -> JSONResponse:
            if not secrets_match(WEBHOOK_SECRET, request.headers.get("x-webhook-secret")):
                return JSONResponse({"title": "Unauthorized"}, status_code=401)
            return await self._accept("goapi", task_id, token, request)

        # The proxy's callback URL carries the task token alone.
        @app.post("/webhooks/midjourney_proxy/{task_id}")
        async def receive_proxy(task_id: UUID, token: str, request: Request) -> JSONResponse:
            return await self._accept("midjourney_proxy", task_id, token, request)

        return app

    async def _accept(
        self, provider: str, task_id: UUID, token: str, request: Request
    ) -> JSONResponse:
        raw = await request.body()
        if not verify_webhook_token(TOKEN_KEY, provider, task_id, token):
            return JSONResponse({"title": "Unauthorized"}, status_code=401)
        body = json.loads(raw)
        self.received.append({"task_id": task_id, "body": body})
        if self.forward:
            digest = hashlib.sha256(raw).hexdigest()
            await publish_callback(self.broker, task_id, body, digest, provider=provider)
        return JSONResponse({"status": "accepted"})

    def bodies(self, task_id: UUID) -> list[dict[str, Any]]:
        return [r["body"] for r in self.received if r["task_id"] == task_id]


async def publish_callback(
    broker: NatsBroker,
    task_id: UUID,
    body: dict[str, Any],
    message_id: str,
    *,
    provider: str = "goapi",
) -> None:
    callback = ProviderCallback(provider=provider, task_id=task_id, received_at=utcnow(), body=body)
    await broker.publish(
        callback.model_dump(mode="json"),
        {"goapi": WEBHOOKS_GOAPI, "midjourney_proxy": WEBHOOKS_MIDJOURNEY_PROXY}[provider],
        stream="WEBHOOKS",
        headers={"Nats-Msg-Id": message_id},
        timeout=5.0,
    )


@dataclass
class PromptsStandIn:
    """Answers `rpc.prompts.generation.{reserve,release}` as the prompts service does for
    prompts that exist and are not archived, and records what it was asked."""

    reserved: list[GenerationReservation] = field(default_factory=list)
    released: list[GenerationReservation] = field(default_factory=list)

    @asynccontextmanager
    async def running(self, nats_url: str) -> AsyncIterator[PromptsStandIn]:
        broker = self._broker(nats_url)
        await broker.start()
        try:
            yield self
        finally:
            await broker.stop()

    def _broker(self, nats_url: str) -> NatsBroker:
        broker = NatsBroker(nats_url)

        @broker.subscriber(RPC_PROMPTS_GENERATION_RESERVE, queue="prompts")
        @rpc_handler
        async def reserve(request: GenerationReservation) -> Prompt:
            self.reserved.append(request)
            return _prompt(request)

        @broker.subscriber(RPC_PROMPTS_GENERATION_RELEASE, queue="prompts")
        @rpc_handler
        async def release(request: GenerationReservation) -> Prompt:
            self.released.append(request)
            return _prompt(request)

        return broker


def _prompt(request: GenerationReservation) -> Prompt:
    now = utcnow()
    return Prompt(
        id=request.prompt_id, owner_id=request.owner_id, chat_id=None, text="a prompt",
        title=None, findings=[],
        status=PromptStatus.new, generation_state=GenerationState.generating, active_tasks=1,
        completed_tasks=0, failed_tasks=0, created_at=now, updated_at=now,
    )  # fmt: skip
