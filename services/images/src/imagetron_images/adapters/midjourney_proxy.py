"""midjourney-proxy (novicezk Java, trueai-org C#): submit, fetch, cancel, read its callbacks.

Two APIs are deployed, and the adapter speaks both (`MidjourneyProxyApi`):
- the original (novicezk 2.x, trueai-org before v10): follow-ups through
  `POST {base}/mj/submit/change {taskId, action: UPSCALE|VARIATION|REROLL, index}`;
- the forks' (trueai-org, the only one from v10): `POST {base}/mj/submit/action {taskId,
  customId}` with the custom id of one of the origin task's `buttons`
  (`MJ::JOB::upsample::2::<hash>`), or built from its message hash when it lists none;
  `POST {base}/mj/task/{id}/cancel`; completed grids carry their four split images
  (`imageUrls`).
`auto` (the default) reads the origin task: a task with `buttons` comes from a fork, so
its buttons are used; otherwise `change`. Common to both: `POST {base}/mj/submit/imagine`,
`GET {base}/mj/task/{id}/fetch`, header `mj-api-secret`; a submission answers
`{"code", "description", "result": <task id>, "properties"}`; a task is
`{"id", "action", "status", "progress": "62%", "imageUrl", "failReason", "properties", ...}`.

The proxy POSTs the whole task JSON to `notifyHook` on every change, unsigned and with no
headers of ours, and echoes that URL in every body (`properties.notifyHook`) and its logs:
so it carries the per-task `token` alone, no shared secret (the gateway checks the token and
keeps the echoed URL out of what it stores).
"""

from __future__ import annotations

import logging
import re
from collections.abc import Mapping
from enum import StrEnum
from typing import Any
from urllib.parse import quote

import httpx
from pydantic import BaseModel, ConfigDict, ValidationError, field_validator

from imagetron_contracts.models.images import ProcessMode, TaskCommand
from imagetron_images.app.ports import (
    MalformedProviderMessage,
    ProviderRejected,
    ProviderTaskNotFound,
    ProviderUnavailable,
)
from imagetron_images.domain import Capability, ProviderRequest, ProviderStatus, ProviderUpdate
from imagetron_platform.webhook_tokens import webhook_url

log = logging.getLogger(__name__)

PROVIDER = "midjourney_proxy"
COMMANDS = frozenset(
    {Capability.imagine, Capability.reroll, Capability.variation, Capability.upscale}
)


class MidjourneyProxyApi(StrEnum):
    """Which follow-up API the proxy has (see the module docstring)."""

    auto = "auto"
    change = "change"
    action = "action"


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
    "CANCEL": ProviderStatus.cancelled,
}
_ACTIONS = {
    "IMAGINE": TaskCommand.imagine,
    "UPSCALE": TaskCommand.upscale,
    "VARIATION": TaskCommand.variation,
    "REROLL": TaskCommand.reroll,
}
# A fork's follow-up keeps the button it came from in `properties.custom_id`; a reroll is
# reported with its origin's action (`IMAGINE`), so the custom id is what says "reroll".
_CUSTOM_ID_COMMANDS = (
    ("MJ::JOB::reroll::", TaskCommand.reroll),
    ("MJ::JOB::upsample::", TaskCommand.upscale),
    ("MJ::JOB::variation::", TaskCommand.variation),
    ("MJ::JOB::high_variation::", TaskCommand.variation),
    ("MJ::JOB::low_variation::", TaskCommand.variation),
)
# What trueai-org's `POST /mj/task/{id}/cancel` writes into `failReason` ("cancel task").
_CANCEL_REASON = "取消任务"
_CANCELLED = "The task was cancelled at midjourney-proxy."
_PERCENT = re.compile(r"^\s*(\d{1,3})(?:\.\d+)?\s*%?\s*$")


class _Task(BaseModel):
    model_config = ConfigDict(extra="ignore")

    id: str
    action: str
    status: str
    progress: str | int | None = None
    imageUrl: str | None = None
    # trueai-org: `[{"url", "thumbnail"}]` (some forks: plain URLs).
    imageUrls: list[Any] | None = None
    failReason: str | None = None
    properties: dict[str, Any] | None = None

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
        webhook_token_key: str,
        api: MidjourneyProxyApi = MidjourneyProxyApi.auto,
    ) -> None:
        self._client = client
        self._base_url = base_url.rstrip("/")
        self._api_secret = api_secret
        self._webhook_base_url = webhook_public_base_url.rstrip("/")
        self._webhook_token_key = webhook_token_key
        self._api = api
        # The original proxy has no cancel; a fork's stops a task that has not finished.
        self._capabilities = (
            COMMANDS if api is MidjourneyProxyApi.change else COMMANDS | {Capability.cancel}
        )

    @property
    def name(self) -> str:
        return PROVIDER

    @property
    def capabilities(self) -> frozenset[Capability]:
        return self._capabilities

    def callback_url(self, request: ProviderRequest) -> str:
        return webhook_url(
            self._webhook_base_url, self._webhook_token_key, PROVIDER, request.task_id
        )

    async def submit(self, request: ProviderRequest) -> str:
        common = {"notifyHook": self.callback_url(request), "state": str(request.task_id)}
        if request.command is TaskCommand.imagine:
            path, body = "/mj/submit/imagine", {"prompt": _prompt(request), "base64Array": []}
        else:
            path, body = await self._follow_up(request)
        answer = await self._call("POST", path, {**body, **common})
        return _accepted(answer, request)

    async def cancel(self, provider_task_id: str) -> None:
        """A fork's cancel answers 200 with no body (for a finished task too); the original
        proxy has no such endpoint (404)."""
        try:
            await self._call("POST", f"/mj/task/{quote(provider_task_id, safe='')}/cancel")
        except _NotFound as exc:
            raise ProviderRejected(
                "This midjourney-proxy has no cancel endpoint (the original proxy)."
            ) from exc
        log.info("midjourney-proxy cancelled task %s", provider_task_id)

    async def fetch(self, provider_task_id: str) -> ProviderUpdate:
        return _update(_task(await self._task_json(provider_task_id), "a task"))

    def parse_callback(self, body: Mapping[str, Any]) -> ProviderUpdate:
        return _update(_task(body, "Not a midjourney-proxy task"))

    async def _follow_up(self, request: ProviderRequest) -> tuple[str, dict[str, Any]]:
        origin_id = request.origin_provider_task_id
        if origin_id is None:
            raise ProviderRejected(f"A {request.command} needs the origin's provider task.")
        if self._api is not MidjourneyProxyApi.change:
            origin = await self._task_json(origin_id)
            custom_id = _custom_id(origin, request.command, request.origin_index)
            if custom_id is not None:
                return "/mj/submit/action", {"taskId": origin_id, "customId": custom_id}
            if self._api is MidjourneyProxyApi.action:
                raise ProviderRejected(
                    f"midjourney-proxy task {origin_id} offers no {request.command} button."
                )
        body: dict[str, Any] = {"taskId": origin_id, "action": request.command.value.upper()}
        if request.command is not TaskCommand.reroll:
            body["index"] = request.origin_index
        return "/mj/submit/change", body

    async def _task_json(self, provider_task_id: str) -> dict[str, Any]:
        answer = await self._call("GET", f"/mj/task/{quote(provider_task_id, safe='')}/fetch")
        if answer is None:
            raise ProviderTaskNotFound(
                f"midjourney-proxy does not know task {provider_task_id} (empty answer)."
            )
        return answer

    async def _call(
        self, method: str, path: str, body: dict[str, Any] | None = None
    ) -> dict[str, Any] | None:
        """The answer's JSON object; None for an empty body (a fork's cancel, an unknown
        task's fetch)."""
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
        answer = _json(response)
        if status == 404 and not _is_submit_result(answer):
            # No such endpoint: this proxy does not have that API.
            raise _NotFound(f"midjourney-proxy has no {method} {path} (404).")
        if status >= 400 and not _is_submit_result(answer):
            raise ProviderRejected(
                f"midjourney-proxy refused the request ({status}): {response.text[:200]}"
            )
        return answer


class _NotFound(ProviderRejected):
    """The proxy answered 404 without a submission result: the endpoint does not exist."""


def _json(response: httpx.Response) -> dict[str, Any] | None:
    if not response.content.strip():
        return None
    try:
        answer = response.json()
    except ValueError:
        if response.status_code >= 400:
            return None
        answer = response.text[:100]
    if isinstance(answer, dict):
        return answer
    if answer is None or response.status_code >= 400:
        return None  # JSON `null` is how some forks say "no such task"
    raise MalformedProviderMessage(
        f"midjourney-proxy answered {response.status_code} with a body that is not a JSON object."
    )


def _is_submit_result(answer: Mapping[str, Any] | None) -> bool:
    return answer is not None and isinstance(answer.get("code"), int) and "description" in answer


def _accepted(answer: Mapping[str, Any] | None, request: ProviderRequest) -> str:
    """The provider's task id from a submission result, or the error it stands for."""
    if answer is None:
        raise MalformedProviderMessage("midjourney-proxy accepted nothing (empty answer).")
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
        raise ProviderRejected(f"midjourney-proxy refused a banned prompt{reason}: {description}")
    if code in (_VALIDATION_ERROR, _NOT_FOUND):
        raise ProviderRejected(f"midjourney-proxy refused the request (code {code}): {description}")
    if code in (_OK, _EXISTS, _QUEUED):
        raise MalformedProviderMessage(f"midjourney-proxy accepted without a task id: {answer}")
    raise ProviderRejected(f"midjourney-proxy answered code {code!r}: {description}")


def _prompt(request: ProviderRequest) -> str:
    """Aspect ratio and speed are Midjourney prompt parameters (`--ar`, `--relax|--fast|
    --turbo`); the proxy passes the prompt to Midjourney as it is."""
    speed = ProcessMode(request.process_mode).value
    return f"{request.prompt_text.strip()} --ar {request.aspect_ratio} --{speed}"


def _custom_id(origin: Mapping[str, Any], command: TaskCommand, index: int | None) -> str | None:
    """The custom id of the origin's button for `command` (a fork's task lists its
    buttons), or one built from the origin's message hash when a fork's task lists none.
    None when the origin comes from a proxy without buttons (the original)."""
    if "buttons" not in origin:
        return None
    prefix = {
        TaskCommand.upscale: f"MJ::JOB::upsample::{index}::",
        TaskCommand.variation: f"MJ::JOB::variation::{index}::",
        TaskCommand.reroll: "MJ::JOB::reroll::0::",
    }[command]
    buttons = origin.get("buttons")
    for button in buttons if isinstance(buttons, list) else ():
        custom_id = button.get("customId") if isinstance(button, dict) else None
        if isinstance(custom_id, str) and custom_id.startswith(prefix):
            return custom_id
    properties = origin.get("properties")
    message_hash = properties.get("messageHash") if isinstance(properties, dict) else None
    if not isinstance(message_hash, str) or not message_hash:
        return None
    return prefix + message_hash + ("::SOLO" if command is TaskCommand.reroll else "")


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
    command = _command(task)
    reason = (task.failReason or "").strip()
    if status is ProviderStatus.failed and reason == _CANCEL_REASON:
        status = ProviderStatus.cancelled
    error = None
    if status is ProviderStatus.failed:
        error = reason or None
    elif status is ProviderStatus.cancelled:
        error = _CANCELLED
    image_url = task.imageUrl or None  # "" means "not yet"
    completed = status is ProviderStatus.completed
    return ProviderUpdate(
        provider_task_id=task.id,
        command=command,
        status=status,
        progress=_percent(task.progress),
        # While in progress the proxy keeps the latest partial render in `imageUrl`.
        preview_url=image_url if status is ProviderStatus.running else None,
        image_url=image_url if completed else None,
        split_urls=_urls(task.imageUrls) if completed else (),
        error=error,
    )


def _command(task: _Task) -> TaskCommand:
    custom_id = (task.properties or {}).get("custom_id")
    if isinstance(custom_id, str):
        for prefix, command in _CUSTOM_ID_COMMANDS:
            if custom_id.startswith(prefix):
                return command
    by_action = _ACTIONS.get(task.action)
    if by_action is None:
        raise MalformedProviderMessage(f"Unsupported midjourney-proxy action {task.action!r}.")
    return by_action


def _urls(values: list[Any] | None) -> tuple[str, ...]:
    found = (v.get("url") if isinstance(v, dict) else v for v in values or ())
    return tuple(url for url in found if isinstance(url, str) and url)


def _percent(value: str | int | None) -> int | None:
    if isinstance(value, int):
        return value
    match = _PERCENT.match(value or "")
    return int(match.group(1)) if match else None
