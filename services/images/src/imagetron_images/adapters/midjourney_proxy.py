"""midjourney-proxy (novicezk Java, trueai-org C#): submit, fetch, and read its callbacks.

Requests: `POST {base}/mj/submit/imagine`, `POST {base}/mj/submit/change`,
`GET {base}/mj/task/{id}/fetch`, header `mj-api-secret`. A submission answers
`{"code", "description", "result": <task id>, "properties"}`; a task is
`{"id", "action", "status", "progress": "62%", "imageUrl", "failReason", "buttons", ...}`.

The proxy POSTs the whole task JSON to `notifyHook` on every change, unsigned and with no
headers of ours, so the callback URL carries both credentials the gateway checks: the
per-task `token` and the shared `secret` (query parameters). The proxy returns only the
2x2 grid (`imageUrl`); its four versions are what upscale(1..4) produces, so a completed
grid task records the grid alone.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Mapping
from typing import Any
from urllib.parse import quote, urlencode

import httpx
from pydantic import BaseModel, ConfigDict, ValidationError, field_validator

from imagetron_contracts.models.images import ProcessMode, TaskCommand
from imagetron_images.app.ports import (
    MalformedProviderMessage,
    ProviderRejected,
    ProviderUnavailable,
)
from imagetron_images.domain import Capability, ProviderRequest, ProviderStatus, ProviderUpdate
from imagetron_platform.webhook_tokens import webhook_token

log = logging.getLogger(__name__)

PROVIDER = "midjourney_proxy"
# The proxy has no cancel in its common API (novicezk has none at all).
CAPABILITIES = frozenset(
    {Capability.imagine, Capability.reroll, Capability.variation, Capability.upscale}
)

# Submission result codes (novicezk `ReturnCode`; trueai-org keeps them).
_OK, _EXISTS, _QUEUED = 1, 21, 22
_QUEUE_FULL, _BANNED_PROMPT = 23, 24
_VALIDATION_ERROR, _NOT_FOUND, _FAILURE = 4, 3, 9

_STATUSES = {
    "NOT_START": ProviderStatus.queued,
    "SUBMITTED": ProviderStatus.queued,
    # trueai-org: waiting for a modal's input (remix, region); we never ask for one.
    "MODAL": ProviderStatus.queued,
    "IN_PROGRESS": ProviderStatus.running,
    "SUCCESS": ProviderStatus.completed,
    "FAILURE": ProviderStatus.failed,
    "CANCEL": ProviderStatus.failed,
}
_ACTIONS = {
    "IMAGINE": TaskCommand.imagine,
    "UPSCALE": TaskCommand.upscale,
    "VARIATION": TaskCommand.variation,
    "REROLL": TaskCommand.reroll,
}
_CANCELLED = "The task was cancelled at midjourney-proxy."
_PERCENT = re.compile(r"^\s*(\d{1,3})(?:\.\d+)?\s*%?\s*$")


class _Task(BaseModel):
    model_config = ConfigDict(extra="ignore")

    id: str
    action: str
    status: str
    progress: str | int | None = None
    imageUrl: str | None = None
    failReason: str | None = None

    @field_validator("status", "action")
    @classmethod
    def _upper(cls, value: str) -> str:
        return value.strip().upper()


class MidjourneyProxyProvider:
    """The `midjourney_proxy` adapter of the ImageProvider port."""

    def __init__(
        self,
        client: httpx.AsyncClient,
        *,
        base_url: str,
        api_secret: str | None,
        webhook_public_base_url: str,
        webhook_secret: str,
        webhook_token_key: str,
    ) -> None:
        self._client = client
        self._base_url = base_url.rstrip("/")
        self._api_secret = api_secret
        self._webhook_base_url = webhook_public_base_url.rstrip("/")
        self._webhook_secret = webhook_secret
        self._webhook_token_key = webhook_token_key

    @property
    def name(self) -> str:
        return PROVIDER

    @property
    def capabilities(self) -> frozenset[Capability]:
        return CAPABILITIES

    def callback_url(self, request: ProviderRequest) -> str:
        token = webhook_token(self._webhook_token_key, PROVIDER, request.task_id)
        query = urlencode({"token": token, "secret": self._webhook_secret})
        return f"{self._webhook_base_url}/webhooks/{PROVIDER}/{request.task_id}?{query}"

    async def submit(self, request: ProviderRequest) -> str:
        common = {"notifyHook": self.callback_url(request), "state": str(request.task_id)}
        if request.command is TaskCommand.imagine:
            path = "/mj/submit/imagine"
            body: dict[str, Any] = {
                "prompt": _prompt(request),
                "base64Array": [],
                **common,
            }
        else:
            if request.origin_provider_task_id is None:
                raise ProviderRejected(f"A {request.command} needs the origin's provider task.")
            path = "/mj/submit/change"
            body = {
                "taskId": request.origin_provider_task_id,
                "action": request.command.value.upper(),
                **common,
            }
            if request.command is not TaskCommand.reroll:
                body["index"] = request.origin_index
        answer = await self._call("POST", path, body)
        code = answer.get("code")
        description = str(answer.get("description") or "")
        result = answer.get("result")
        if code in (_OK, _EXISTS, _QUEUED) and isinstance(result, str | int) and str(result):
            log.info(
                "midjourney-proxy accepted task %s as %s (code %s: %s)",
                request.task_id, result, code, description,
            )  # fmt: skip
            return str(result)
        if code in (_QUEUE_FULL, _FAILURE):
            raise ProviderUnavailable(f"midjourney-proxy is busy (code {code}): {description}")
        if code == _BANNED_PROMPT:
            properties = answer.get("properties")
            word = properties.get("bannedWord") if isinstance(properties, dict) else None
            reason = f" (banned word: {word})" if word else ""
            raise ProviderRejected(
                f"midjourney-proxy refused a banned prompt{reason}: {description}"
            )
        if code in (_VALIDATION_ERROR, _NOT_FOUND):
            raise ProviderRejected(
                f"midjourney-proxy refused the request (code {code}): {description}"
            )
        if code in (_OK, _EXISTS, _QUEUED):
            raise MalformedProviderMessage(f"midjourney-proxy accepted without a task id: {answer}")
        raise ProviderRejected(f"midjourney-proxy answered code {code!r}: {description}")

    async def cancel(self, provider_task_id: str) -> None:
        raise ProviderRejected("midjourney-proxy cannot cancel a task.")

    async def fetch(self, provider_task_id: str) -> ProviderUpdate:
        answer = await self._call("GET", f"/mj/task/{quote(provider_task_id, safe='')}/fetch")
        return _update(_task(answer, "midjourney-proxy answered without a task"))

    def parse_callback(self, body: Mapping[str, Any]) -> ProviderUpdate:
        return _update(_task(body, "Not a midjourney-proxy task"))

    async def _call(
        self, method: str, path: str, body: dict[str, Any] | None = None
    ) -> dict[str, Any]:
        headers = {"mj-api-secret": self._api_secret} if self._api_secret else {}
        try:
            response = await self._client.request(
                method, self._base_url + path, json=body, headers=headers
            )
        except httpx.HTTPError as exc:
            raise ProviderUnavailable(f"midjourney-proxy could not be reached: {exc!r}") from exc
        status = response.status_code
        if status == 429 or status >= 500:
            raise ProviderUnavailable(f"midjourney-proxy is unavailable ({status}).")
        if status >= 400:
            raise ProviderRejected(
                f"midjourney-proxy refused the request ({status}): {response.text[:200]}"
            )
        try:
            answer = response.json()
        except ValueError:
            answer = None
        if not isinstance(answer, dict):
            raise MalformedProviderMessage(
                f"midjourney-proxy answered {status} with a body that is not a JSON object."
            )
        return answer


def _prompt(request: ProviderRequest) -> str:
    """Aspect ratio and speed are Midjourney prompt parameters (`--ar`, `--relax|--fast|
    --turbo`); the proxy passes the prompt to Midjourney as it is."""
    speed = ProcessMode(request.process_mode).value
    return f"{request.prompt_text.strip()} --ar {request.aspect_ratio} --{speed}"


def _task(body: Mapping[str, Any], what: str) -> _Task:
    try:
        return _Task.model_validate(body)
    except ValidationError as exc:
        err = exc.errors()[0]
        where = ".".join(map(str, err["loc"])) or "body"
        raise MalformedProviderMessage(f"{what}: {where}: {err['msg']}") from exc


def _update(task: _Task) -> ProviderUpdate:
    status = _STATUSES.get(task.status)
    if status is None:
        raise MalformedProviderMessage(f"Unknown midjourney-proxy task status {task.status!r}.")
    command = _ACTIONS.get(task.action)
    if command is None:
        raise MalformedProviderMessage(f"Unsupported midjourney-proxy action {task.action!r}.")
    image_url = task.imageUrl or None  # "" means "not yet"
    error = None
    if status is ProviderStatus.failed:
        error = (task.failReason or "").strip() or (_CANCELLED if task.status == "CANCEL" else None)
    return ProviderUpdate(
        provider_task_id=task.id,
        command=command,
        status=status,
        progress=_percent(task.progress),
        # While in progress the proxy keeps the latest partial render in `imageUrl`.
        preview_url=image_url if status is ProviderStatus.running else None,
        image_url=image_url if status is ProviderStatus.completed else None,
        error=error,
    )


def _percent(value: str | int | None) -> int | None:
    if isinstance(value, int):
        return value
    match = _PERCENT.match(value or "")
    return int(match.group(1)) if match else None
