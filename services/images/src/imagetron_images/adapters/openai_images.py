"""OpenAI Images: synchronous generation, results staged in our bucket.

Request: `POST {base}/v1/images/generations` with `{model, prompt, n, size}`, header
`Authorization: Bearer <key>`. It answers only once the images exist:
`{"created", "data": [{"b64_json": ...}, ...], "usage": {...}}` (gpt-image models return
base64 only). Errors are `{"error": {"message", "type", "param", "code"}}`.

There are no callbacks and no task to poll: `submit` decodes the images, stages them in S3
under `staging/{owner_id}/{task_id}/{nonce}/{n}.png` and returns a provider task id from
which `fetch` rebuilds the completed report (`staged://` URLs, versions only, no grid), so
the submission handler completes the task right after accepting it (Capability.synchronous).
The base64 never leaves this adapter: rows and events only carry the staged URLs.
"""

from __future__ import annotations

import base64
import binascii
import logging
import re
from collections.abc import Mapping
from typing import Any, Protocol
from uuid import UUID, uuid4

import httpx

from imagetron_contracts.models.images import TaskCommand
from imagetron_images.app.ports import (
    MalformedProviderMessage,
    ProviderBusy,
    ProviderRejected,
    ProviderUnavailable,
)
from imagetron_images.domain import Capability, ProviderRequest, ProviderStatus, ProviderUpdate
from imagetron_images.domain.providers import STAGED_SCHEME, staging_prefix

log = logging.getLogger(__name__)

PROVIDER = "openai"
# Text to image only; the request is over before a cancel could reach it.
CAPABILITIES = frozenset({Capability.imagine, Capability.synchronous})
SQUARE, LANDSCAPE, PORTRAIT = "1024x1024", "1536x1024", "1024x1536"
MAX_IMAGES = 4  # a task has versions 1-4
# 429s that are not about load: waiting will not help.
_PERMANENT_429_CODES = frozenset({"insufficient_quota", "billing_hard_limit_reached"})
_TASK_ID = re.compile(
    r"^(?P<owner>[0-9a-f-]{36})/(?P<task>[0-9a-f-]{36})/(?P<nonce>[0-9a-f]{32})/(?P<n>[1-4])$"
)


class StagingStore(Protocol):
    async def put(self, key: str, data: bytes, content_type: str) -> None: ...


def size_for(aspect_ratio: str) -> str:
    """The supported size closest in shape to `W:H` (square when it cannot be read)."""
    width, _, height = aspect_ratio.partition(":")
    try:
        w, h = float(width), float(height)
    except ValueError:
        return SQUARE
    if w <= 0 or h <= 0 or w == h:
        return SQUARE
    return LANDSCAPE if w > h else PORTRAIT


def staged_url(owner_id: UUID, task_id: UUID, nonce: str, number: int) -> str:
    return f"{STAGED_SCHEME}{staging_prefix(owner_id, task_id)}{nonce}/{number}.png"


class OpenAIImagesProvider:
    """The `openai` adapter of the ImageProvider port."""

    def __init__(
        self,
        client: httpx.AsyncClient,
        staging: StagingStore,
        *,
        base_url: str,
        api_key: str,
        model: str,
        count: int,
        timeout_seconds: float,
    ) -> None:
        self._client = client
        self._staging = staging
        self._base_url = base_url.rstrip("/")
        self._api_key = api_key
        self._model = model
        self._count = min(max(count, 1), MAX_IMAGES)
        self._timeout = timeout_seconds

    @property
    def name(self) -> str:
        return PROVIDER

    @property
    def capabilities(self) -> frozenset[Capability]:
        return CAPABILITIES

    async def submit(self, request: ProviderRequest) -> str:
        if request.command is not TaskCommand.imagine:
            raise ProviderRejected(f"OpenAI Images cannot {request.command}: only imagine.")
        body: dict[str, Any] = {
            "model": self._model,
            "prompt": request.prompt_text,
            "n": self._count,
            "size": size_for(request.aspect_ratio),
        }
        if self._model.startswith("dall-e"):  # gpt-image models always answer base64
            body["response_format"] = "b64_json"
        images = _decode(await self._generate(body))
        nonce = uuid4().hex
        for number, data in enumerate(images, start=1):
            url = staged_url(request.owner_id, request.task_id, nonce, number)
            await self._staging.put(url.removeprefix(STAGED_SCHEME), data, "image/png")
        log.info("openai generated %d image(s) for task %s", len(images), request.task_id)
        return f"{request.owner_id}/{request.task_id}/{nonce}/{len(images)}"

    async def cancel(self, provider_task_id: str) -> None:
        raise ProviderRejected("OpenAI Images tasks finish within their request.")

    async def fetch(self, provider_task_id: str) -> ProviderUpdate:
        found = _TASK_ID.match(provider_task_id)
        if found is None:
            raise MalformedProviderMessage(f"Not an OpenAI Images task id: {provider_task_id!r}")
        owner, task = UUID(found["owner"]), UUID(found["task"])
        return ProviderUpdate(
            provider_task_id=provider_task_id,
            command=TaskCommand.imagine,
            status=ProviderStatus.completed,
            split_urls=tuple(
                staged_url(owner, task, found["nonce"], number)
                for number in range(1, int(found["n"]) + 1)
            ),
        )

    def parse_callback(self, body: Mapping[str, Any]) -> ProviderUpdate:
        raise MalformedProviderMessage("OpenAI Images sends no callbacks.")

    async def _generate(self, body: dict[str, Any]) -> Any:
        try:
            response = await self._client.post(
                f"{self._base_url}/v1/images/generations",
                json=body,
                headers={"Authorization": f"Bearer {self._api_key}"},
                timeout=self._timeout,
            )
        except httpx.HTTPError as exc:
            raise ProviderUnavailable(f"OpenAI could not be reached: {exc!r}") from exc
        try:
            answer = response.json()
        except ValueError:
            answer = None
        status = response.status_code
        if status >= 400:
            error = answer.get("error") if isinstance(answer, dict) else None
            error = error if isinstance(error, dict) else {}
            message = str(error.get("message") or response.reason_phrase)
            code = error.get("code") or error.get("type")
            text = f"({status}{f', {code}' if code else ''}): {message}"
            if status == 429 and code not in _PERMANENT_429_CODES:
                raise ProviderBusy(f"OpenAI is at capacity {text}")
            if status >= 500 or status in (408, 409):
                raise ProviderUnavailable(f"OpenAI is unavailable {text}")
            raise ProviderRejected(f"OpenAI refused the request {text}")
        if not isinstance(answer, dict):
            raise MalformedProviderMessage(
                f"OpenAI answered {status} with a body that is not a JSON object."
            )
        return answer


def _decode(answer: Mapping[str, Any]) -> list[bytes]:
    data = answer.get("data")
    if not isinstance(data, list) or not data:
        raise MalformedProviderMessage("OpenAI answered without images (`data`).")
    images: list[bytes] = []
    for item in data[:MAX_IMAGES]:
        encoded = item.get("b64_json") if isinstance(item, dict) else None
        if not isinstance(encoded, str) or not encoded:
            raise MalformedProviderMessage("OpenAI answered an image without `b64_json`.")
        try:
            images.append(base64.b64decode(encoded, validate=True))
        except (binascii.Error, ValueError) as exc:
            raise MalformedProviderMessage(f"OpenAI answered invalid base64: {exc}") from exc
    return images
