"""Replicate predictions: submit, fetch, and read its (Standard Webhooks signed) callbacks.

Requests: `POST {base}/v1/models/{owner}/{name}/predictions` (official models) or
`POST {base}/v1/predictions` with `version`, `GET {base}/v1/predictions/{id}`, header
`Authorization: Bearer <token>`. Both answer, and every webhook carries, the prediction
object `{id, model, version, input, output, error, logs, status, created_at, urls, ...}`.

Replicate runs a text-to-image model: imagine is the only command it can do. Its outputs
(a URL, or a list of them) become the task's versions; there is no grid. They are deleted
about an hour after the prediction (`data_removed` becomes true), so they are persisted as
soon as the task completes. Webhooks come for every event (`start`, `output`, `logs`,
`completed`; `output` and `logs` at most every 500 ms): progress is read from the logs where
the model prints a progress bar (tqdm's `45%|████▌     | 9/20`, the pattern Replicate's own
Python client parses), and the latest output seen while processing is the preview.
The gateway verifies the webhook signature; the callback URL also carries the per-task
token, because the signature covers the body, not the task id in the URL.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Mapping
from typing import Any
from urllib.parse import quote

import httpx
from pydantic import BaseModel, ConfigDict, ValidationError

from imagetron_contracts.models.images import TaskCommand
from imagetron_images.app.ports import (
    MalformedProviderMessage,
    ProviderRejected,
    ProviderTaskNotFound,
    ProviderUnavailable,
)
from imagetron_images.domain import Capability, ProviderRequest, ProviderStatus, ProviderUpdate
from imagetron_platform.webhook_tokens import webhook_url

log = logging.getLogger(__name__)

PROVIDER = "replicate"
# A text-to-image model: nothing to upscale, vary or reroll; a prediction can be cancelled.
CAPABILITIES = frozenset({Capability.imagine, Capability.cancel})
# Every event: `output` and `logs` carry the progress, `start`/`completed` the changes.
WEBHOOK_EVENTS = ("start", "output", "logs", "completed")

_STATUSES = {
    "starting": ProviderStatus.queued,
    "processing": ProviderStatus.running,
    "succeeded": ProviderStatus.completed,
    "failed": ProviderStatus.failed,
    "canceled": ProviderStatus.cancelled,
    # Stopped before it ran (e.g. its deadline passed in the queue).
    "aborted": ProviderStatus.failed,
}
_CANCELED = "The prediction was canceled at Replicate."
_ABORTED = "Replicate aborted the prediction before it ran."
OUTPUT_REMOVED = (
    "Replicate finished the prediction but has already deleted its outputs (it keeps them "
    "about an hour): there is nothing left to store."
)
# A tqdm progress line, as `replicate.prediction.Prediction.Progress` reads it.
_PROGRESS = re.compile(r"^\s*(?P<percentage>\d+)%\s*\|.+?\|\s*\d+/\d+")


class _Prediction(BaseModel):
    model_config = ConfigDict(extra="ignore")

    id: str
    status: str
    output: Any = None
    error: Any = None
    logs: str | None = None
    data_removed: bool = False


class ReplicateProvider:
    """The `replicate` adapter of the ImageProvider port."""

    def __init__(
        self,
        client: httpx.AsyncClient,
        *,
        base_url: str,
        api_token: str,
        model: str,
        version: str | None,
        extra_input: Mapping[str, Any],
        webhook_public_base_url: str,
        webhook_token_key: str,
    ) -> None:
        self._client = client
        self._base_url = base_url.rstrip("/")
        self._api_token = api_token
        self._model = model.strip("/")
        self._version = version or None
        self._extra_input = dict(extra_input)
        self._webhook_base_url = webhook_public_base_url.rstrip("/")
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
        if request.command is not TaskCommand.imagine:
            raise ProviderRejected(f"Replicate cannot {request.command}: only imagine.")
        body: dict[str, Any] = {
            "input": {
                **self._extra_input,
                "prompt": request.prompt_text,
                "aspect_ratio": request.aspect_ratio,
            },
            "webhook": self.callback_url(request),
            "webhook_events_filter": list(WEBHOOK_EVENTS),
        }
        if self._version is not None:
            path = "/v1/predictions"
            body["version"] = self._version
        else:
            owner, _, name = self._model.partition("/")
            path = f"/v1/models/{quote(owner, safe='')}/{quote(name, safe='')}/predictions"
        prediction = await self._call("POST", path, body)
        log.info("replicate accepted task %s as %s", request.task_id, prediction.id)
        return prediction.id

    async def cancel(self, provider_task_id: str) -> None:
        await self._call("POST", f"/v1/predictions/{quote(provider_task_id, safe='')}/cancel")
        log.info("replicate cancelled prediction %s", provider_task_id)

    async def fetch(self, provider_task_id: str) -> ProviderUpdate:
        return _update(
            await self._call("GET", f"/v1/predictions/{quote(provider_task_id, safe='')}")
        )

    def parse_callback(self, body: Mapping[str, Any]) -> ProviderUpdate:
        return _update(_prediction(body, "Not a Replicate prediction"))

    async def _call(
        self, method: str, path: str, body: dict[str, Any] | None = None
    ) -> _Prediction:
        try:
            response = await self._client.request(
                method,
                self._base_url + path,
                json=body,
                headers={"Authorization": f"Bearer {self._api_token}"},
            )
        except httpx.HTTPError as exc:
            raise ProviderUnavailable(f"Replicate could not be reached: {exc!r}") from exc
        try:
            answer = response.json()
        except ValueError:
            answer = None
        status = response.status_code
        if status >= 400:
            # Errors are problem details: {"title", "detail", "status"} (or just "detail").
            detail = (
                answer.get("detail") or answer.get("title") if isinstance(answer, dict) else None
            )
            message = f"({status}): {detail or response.reason_phrase}"
            if status == 429 or status >= 500:
                raise ProviderUnavailable(f"Replicate is unavailable {message}")
            if status == 404:
                raise ProviderTaskNotFound(f"Replicate does not know it {message}")
            raise ProviderRejected(f"Replicate refused the request {message}")
        if not isinstance(answer, dict):
            raise MalformedProviderMessage(
                f"Replicate answered {status} with a body that is not a JSON object."
            )
        return _prediction(answer, "Replicate answered without a prediction")


def _prediction(body: Mapping[str, Any], what: str) -> _Prediction:
    try:
        return _Prediction.model_validate(body)
    except ValidationError as exc:
        err = exc.errors()[0]
        where = ".".join(map(str, err["loc"])) or "body"
        raise MalformedProviderMessage(f"{what}: {where}: {err['msg']}") from exc


def _update(prediction: _Prediction) -> ProviderUpdate:
    name = prediction.status.strip().lower()
    status = _STATUSES.get(name)
    if status is None:
        raise MalformedProviderMessage(f"Unknown Replicate status {prediction.status!r}.")
    outputs = _outputs(prediction.output)
    error = str(prediction.error).strip() if prediction.error else None
    if status is ProviderStatus.completed and not outputs and prediction.data_removed:
        # Found too late (e.g. by reconciliation after its webhook was lost).
        status, error = ProviderStatus.failed, OUTPUT_REMOVED
    elif status is ProviderStatus.cancelled:
        error = error or _CANCELED
    elif name == "aborted":
        error = error or _ABORTED
    running = status is ProviderStatus.running
    return ProviderUpdate(
        provider_task_id=prediction.id,
        command=TaskCommand.imagine,
        status=status,
        progress=_progress(prediction.logs) if running else None,
        # While processing, the outputs so far: the latest is the preview.
        preview_url=outputs[-1] if running and outputs else None,
        split_urls=outputs if status is ProviderStatus.completed else (),
        error=error if status in (ProviderStatus.failed, ProviderStatus.cancelled) else None,
    )


def _progress(logs: str | None) -> int | None:
    """The percentage of the last progress bar in the logs, if the model prints one."""
    # splitlines() also splits on the carriage returns tqdm redraws its bar with.
    for line in reversed((logs or "").splitlines()):
        found = _PROGRESS.match(line)
        if found:
            return int(found["percentage"])
    return None


def _outputs(output: Any) -> tuple[str, ...]:
    """A model's output is one URL or a list of them (anything else is not an image)."""
    values = output if isinstance(output, list) else [output]
    return tuple(v for v in values if isinstance(v, str) and v.startswith(("https://", "http://")))
