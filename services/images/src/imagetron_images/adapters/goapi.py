"""GoAPI / PiAPI unified task API (Midjourney): submit, fetch, cancel, read its callbacks.

Requests: `POST {base}/api/v1/task`, `GET {base}/api/v1/task/{id}`,
`DELETE {base}/api/v1/task/{id}` (cancel), header `x-api-key`. Answers come as
`{"code", "data": <task>, "message"}` (a cancel's as `{"code": 200, "message": "task …
canceled"}`, without `data`); callbacks as `{"timestamp", "data": <task>}`. The callback
URL goes through our gateway and carries a per-task token, because GoAPI signs nothing (it
only echoes the shared secret). Statuses: `pending`, `staged`, `processing`, `running`,
`completed`, `failed`, `cancelled` (PiAPI's own client declares all seven).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Annotated, Any
from urllib.parse import quote

import httpx
from pydantic import BaseModel, BeforeValidator, ConfigDict, ValidationError, field_validator

from imagetron_contracts.models.images import TaskCommand
from imagetron_images.app.ports import (
    MalformedProviderMessage,
    ProviderBusy,
    ProviderRejected,
    ProviderTaskNotFound,
    ProviderUnavailable,
)
from imagetron_images.domain import Capability, ProviderRequest, ProviderStatus, ProviderUpdate
from imagetron_platform.webhook_tokens import webhook_url

log = logging.getLogger(__name__)

PROVIDER = "goapi"
# GoAPI's Midjourney API does every command, and cancels a task while it is pending.
# Asynchronous: results come by callback (or reconciliation).
CAPABILITIES = frozenset(Capability) - {Capability.synchronous}

_STATUSES = {
    "pending": ProviderStatus.queued,
    "staged": ProviderStatus.queued,
    "processing": ProviderStatus.running,
    "running": ProviderStatus.running,
    "completed": ProviderStatus.completed,
    "failed": ProviderStatus.failed,
    "cancelled": ProviderStatus.cancelled,
    # The cancel answer spells it so ("task … canceled"); accept the status either way.
    "canceled": ProviderStatus.cancelled,
}


class _Lenient(BaseModel):
    model_config = ConfigDict(extra="ignore")


def _whole_number(value: Any) -> int | None:
    """A percentage is a whole number; anything else (a float, a string, a bool) drops the
    field, not the report it came in."""
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    if value is not None:
        log.info("ignored a GoAPI progress that is not a whole number: %r", value)
    return None


Percentage = Annotated[int | None, BeforeValidator(_whole_number)]


class _Output(_Lenient):
    image_url: str | None = None
    image_urls: list[str | None] | None = None
    temporary_image_urls: list[str | None] | None = None
    intermediate_image_urls: list[str | None] | None = None
    task_progress: Percentage = None
    progress: Percentage = None


class _Error(_Lenient):
    code: int | None = None
    message: str | None = None
    raw_message: str | None = None


class _Task(_Lenient):
    task_id: str
    task_type: str
    status: str
    output: _Output | None = None
    error: _Error | None = None

    @field_validator("status", "task_type")
    @classmethod
    def _lower(cls, value: str) -> str:
        return value.strip().lower()


class _Callback(_Lenient):
    timestamp: int | None = None
    data: _Task


class GoApiProvider:
    """The `goapi` adapter of the ImageProvider port."""

    def __init__(
        self,
        client: httpx.AsyncClient,
        *,
        base_url: str,
        api_key: str,
        webhook_public_base_url: str,
        webhook_secret: str,
        webhook_token_key: str,
    ) -> None:
        self._client = client
        self._base_url = base_url.rstrip("/")
        self._api_key = api_key
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
        return webhook_url(
            self._webhook_base_url, self._webhook_token_key, PROVIDER, request.task_id
        )

    async def submit(self, request: ProviderRequest) -> str:
        body = {
            "model": "midjourney",
            "task_type": request.command.value,
            "input": _input(request),
            "config": {
                "service_mode": "",
                "webhook_config": {
                    "endpoint": self.callback_url(request),
                    "secret": self._webhook_secret,
                },
            },
        }
        task = _task(await self._call("POST", "/api/v1/task", body))
        log.info("goapi accepted task %s as %s", request.task_id, task.task_id)
        return task.task_id

    async def cancel(self, provider_task_id: str) -> None:
        """GoAPI answers `{"code": 200, "message": "task … canceled"}`: no task to read; its
        callback (or the next fetch) then reports the task `cancelled`."""
        answer = await self._call("DELETE", f"/api/v1/task/{quote(provider_task_id, safe='')}")
        log.info("goapi cancelled task %s: %s", provider_task_id, answer.get("message"))

    async def fetch(self, provider_task_id: str) -> ProviderUpdate:
        answer = await self._call("GET", f"/api/v1/task/{quote(provider_task_id, safe='')}")
        return _update(_task(answer))

    def parse_callback(self, body: Mapping[str, Any]) -> ProviderUpdate:
        try:
            callback = _Callback.model_validate(body)
        except ValidationError as exc:
            raise MalformedProviderMessage(f"Not a GoAPI callback: {_first_error(exc)}") from exc
        return _update(callback.data)

    async def _call(
        self, method: str, path: str, body: dict[str, Any] | None = None
    ) -> dict[str, Any]:
        """The answer's envelope, once neither the HTTP status nor its `code` is an error."""
        try:
            response = await self._client.request(
                method, self._base_url + path, json=body, headers={"x-api-key": self._api_key}
            )
        except httpx.HTTPError as exc:
            raise ProviderUnavailable(f"GoAPI could not be reached: {exc!r}") from exc
        envelope = _json(response)
        # GoAPI repeats the status in the body's `code`; either may carry the error.
        code = envelope.get("code") if isinstance(envelope.get("code"), int) else None
        status = response.status_code if response.status_code >= 400 else (code or 200)
        if status >= 400:
            message = envelope.get("message") or response.reason_phrase
            if status == 429:
                raise ProviderBusy(f"GoAPI is at capacity ({status}): {message}")
            if status >= 500:
                raise ProviderUnavailable(f"GoAPI is unavailable ({status}): {message}")
            if status == 404:
                raise ProviderTaskNotFound(f"GoAPI does not know it ({status}): {message}")
            raise ProviderRejected(f"GoAPI refused the request ({status}): {message}")
        return envelope


def _task(envelope: Mapping[str, Any]) -> _Task:
    try:
        return _Task.model_validate(envelope.get("data"))
    except ValidationError as exc:
        raise MalformedProviderMessage(
            f"GoAPI answered without a task: {_first_error(exc)}"
        ) from exc


def _input(request: ProviderRequest) -> dict[str, Any]:
    match request.command:
        case TaskCommand.imagine:
            return {
                "prompt": request.prompt_text,
                "aspect_ratio": request.aspect_ratio,
                "process_mode": request.process_mode.value,
                "skip_prompt_check": False,
            }
        case TaskCommand.upscale:
            return {
                "origin_task_id": request.origin_provider_task_id,
                "index": str(request.origin_index),
            }
        case TaskCommand.variation:
            return {
                "origin_task_id": request.origin_provider_task_id,
                "index": str(request.origin_index),
                "prompt": request.prompt_text,
                "aspect_ratio": request.aspect_ratio,
            }
        case TaskCommand.reroll:
            return {
                "origin_task_id": request.origin_provider_task_id,
                "prompt": request.prompt_text,
                "aspect_ratio": request.aspect_ratio,
            }


def _update(task: _Task) -> ProviderUpdate:
    status = _STATUSES.get(task.status)
    if status is None:
        raise MalformedProviderMessage(f"Unknown GoAPI task status {task.status!r}.")
    try:
        command = TaskCommand(task.task_type)
    except ValueError as exc:
        raise MalformedProviderMessage(f"Unknown GoAPI task type {task.task_type!r}.") from exc
    output = task.output or _Output()
    image_url = output.image_url or None  # GoAPI sends "" for "not yet"
    splits = _urls(output.image_urls) or _urls(output.temporary_image_urls)
    error = None
    if task.error is not None:
        error = task.error.message or task.error.raw_message or None
    progress = output.task_progress if output.task_progress is not None else output.progress
    preview = None
    if status is ProviderStatus.running:
        # While running, the image fields hold the latest in-progress render, if any.
        intermediate = _urls(output.intermediate_image_urls)
        preview = intermediate[-1] if intermediate else image_url
    return ProviderUpdate(
        provider_task_id=task.task_id,
        command=command,
        status=status,
        progress=progress,
        preview_url=preview,
        image_url=image_url if status is ProviderStatus.completed else None,
        split_urls=splits if status is ProviderStatus.completed else (),
        error=error if status in (ProviderStatus.failed, ProviderStatus.cancelled) else None,
    )


def _urls(values: list[str | None] | None) -> tuple[str, ...]:
    return tuple(v for v in values or () if v)


def _json(response: httpx.Response) -> dict[str, Any]:
    try:
        body = response.json()
    except ValueError:
        body = None
    if isinstance(body, dict):
        return body
    if response.status_code >= 400:
        return {}
    raise MalformedProviderMessage(
        f"GoAPI answered {response.status_code} with a body that is not a JSON object."
    )


def _first_error(exc: ValidationError) -> str:
    err = exc.errors()[0]
    return f"{'.'.join(map(str, err['loc'])) or 'body'}: {err['msg']}"
