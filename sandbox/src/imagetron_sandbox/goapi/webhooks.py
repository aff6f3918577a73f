"""Webhook delivery, plus the delivery faults.

Where a task's notifications go and what they look like is its ``WebhookTarget``: PiAPI's
(``{"timestamp": <unix seconds>, "data": <task object>}``, header ``x-webhook-secret`` with
the configured secret verbatim, retried with exponential backoff) or another face's (the
midjourney-proxy one POSTs its task JSON, once). Each task's webhooks go out one after
another, in order, unless a fault knob says otherwise.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import httpx
from pydantic import JsonValue

from imagetron_sandbox.faults.knobs import FaultKnobs
from imagetron_sandbox.settings import SandboxSettings

logger = logging.getLogger(__name__)
USER_AGENT = "imagetron-sandbox-webhook/1.0"


@dataclass(frozen=True, slots=True)
class WebhookTarget:
    """Where one task's notifications go: ``body(record)`` renders the task as it is now
    (called at each change, so every notification is a snapshot)."""

    endpoint: str
    body: Callable[[Any], JsonValue]
    headers: Mapping[str, str] = field(default_factory=dict)
    # None: the sandbox's ``webhook_max_attempts``; 1: never retried.
    max_attempts: int | None = None


def piapi_body(record: Any) -> JsonValue:
    """PiAPI's webhook body: ``{"timestamp", "data": <task object>}``."""
    return {"timestamp": int(time.time()), "data": record.task.model_dump(mode="json")}


@dataclass(frozen=True, slots=True)
class WebhookEvent:
    """One notification: the body rendered when the task changed."""

    body: bytes
    terminal: bool


class WebhookSender:
    """POSTs webhook bodies with retries; owns the HTTP client (opened by the app lifespan)."""

    def __init__(self, settings: SandboxSettings) -> None:
        self._settings = settings
        self._client: httpx.AsyncClient | None = None

    async def open(self) -> None:
        if self._client is None:
            self._client = httpx.AsyncClient(
                timeout=self._settings.webhook_timeout_s, headers={"user-agent": USER_AGENT}
            )

    async def aclose(self) -> None:
        if self._client is not None:
            await self._client.aclose()
            self._client = None

    async def post(self, target: WebhookTarget, body: bytes) -> bool:
        """Deliver ``body``; True once a 2xx came back, False after the last failed attempt."""
        if self._client is None:
            raise RuntimeError("webhook sender is not open")
        endpoint = target.endpoint
        headers = {"content-type": "application/json", **target.headers}
        attempts = target.max_attempts or self._settings.webhook_max_attempts
        for attempt in range(1, attempts + 1):
            try:
                response = await self._client.post(endpoint, content=body, headers=headers)
            except httpx.HTTPError as exc:
                logger.warning("webhook to %s failed (attempt %d): %r", endpoint, attempt, exc)
            else:
                if response.is_success:
                    return True
                logger.warning(
                    "webhook to %s answered %d (attempt %d)",
                    endpoint,
                    response.status_code,
                    attempt,
                )
            if attempt < attempts:
                await asyncio.sleep(self._settings.webhook_backoff_ms / 1000 * 2 ** (attempt - 1))
        logger.error("giving up on webhook to %s after %d attempts", endpoint, attempts)
        return False


class WebhookDispatcher:
    """The ordered outbox of one task, shaped by the webhook fault knobs."""

    def __init__(self, sender: WebhookSender, target: WebhookTarget, knobs: FaultKnobs) -> None:
        self._sender = sender
        self._target = target
        self._knobs = knobs
        self._queue: asyncio.Queue[WebhookEvent] = asyncio.Queue()

    def publish(self, record: Any, *, terminal: bool) -> None:
        body = json.dumps(self._target.body(record), ensure_ascii=False).encode()
        self._queue.put_nowait(WebhookEvent(body, terminal))

    async def run(self) -> None:
        """Deliver events until the terminal one (and any held back behind it) went out."""
        held: list[WebhookEvent] = []
        while True:
            event = await self._queue.get()
            if self._knobs.webhook_out_of_order and not event.terminal:
                held.append(event)
                continue
            await self._deliver(event)
            if event.terminal:
                for stale in held:
                    await self._deliver(stale)
                return

    async def _deliver(self, event: WebhookEvent) -> None:
        if self._knobs.webhook_delay_ms:
            await asyncio.sleep(self._knobs.webhook_delay_ms / 1000)
        for _ in range(1 + self._knobs.webhook_duplicates):
            await self._sender.post(self._target, event.body)
