"""Replicate predictions: submit, fetch, and read its (Standard Webhooks signed) callbacks.

Requests: `POST {base}/v1/models/{owner}/{name}/predictions` (official models) or
`POST {base}/v1/predictions` with `version`, `GET {base}/v1/predictions/{id}`, header
`Authorization: Bearer <token>`. Both answer, and every webhook carries, the prediction
object `{id, model, version, input, output, error, logs, status, created_at, urls, ...}`.

Replicate runs a text-to-image model: imagine is the only command it can do. Its outputs
(a URL, or a list of them) become the task's versions; there is no grid. They are deleted
about an hour after the prediction, so they are persisted as soon as the task completes.
The gateway verifies the webhook signature; the callback URL also carries the per-task
token, because the signature covers the body, not the task id in the URL.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any
from urllib.parse import quote, urlencode

import httpx
from pydantic import BaseModel, ConfigDict, ValidationError

from imagetron_contracts.models.images import TaskCommand
from imagetron_images.app.ports import (
    MalformedProviderMessage,
    ProviderRejected,
    ProviderUnavailable,
)
from imagetron_images.domain import Capability, ProviderRequest, ProviderStatus, ProviderUpdate
from imagetron_platform.webhook_tokens import webhook_token

log = logging.getLogger(__name__)

PROVIDER = "replicate"
# A text-to-image model: nothing to upscale, vary or reroll; a prediction can be cancelled.
CAPABILITIES = frozenset({Capability.imagine, Capability.cancel})
# `start` and `completed` are always sent; `output`/`logs` would only add noise.
WEBHOOK_EVENTS = ("start", "completed")

_STATUSES = {
    "starting": ProviderStatus.queued,
    "processing": ProviderStatus.running,
    "succeeded": ProviderStatus.completed,
    "failed": ProviderStatus.failed,
    "canceled": ProviderStatus.failed,
    "aborted": ProviderStatus.failed,
}
_CANCELED = "The prediction was canceled at Replicate."


class _Prediction(BaseModel):
    model_config = ConfigDict(extra="ignore")

    id: str
    status: str
    output: Any = None
    error: Any = None


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
        token = webhook_token(self._webhook_token_key, PROVIDER, request.task_id)
        query = urlencode({"token": token})
        return f"{self._webhook_base_url}/webhooks/{PROVIDER}/{request.task_id}?{query}"

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
    status = _STATUSES.get(prediction.status.strip().lower())
    if status is None:
        raise MalformedProviderMessage(f"Unknown Replicate status {prediction.status!r}.")
    error = None
    if status is ProviderStatus.failed:
        error = str(prediction.error).strip() if prediction.error else None
        if not error and prediction.status != "failed":
            error = _CANCELED
    return ProviderUpdate(
        provider_task_id=prediction.id,
        command=TaskCommand.imagine,
        status=status,
        split_urls=_outputs(prediction.output) if status is ProviderStatus.completed else (),
        error=error,
    )


def _outputs(output: Any) -> tuple[str, ...]:
    """A model's output is one URL or a list of them (anything else is not an image)."""
    values = output if isinstance(output, list) else [output]
    return tuple(v for v in values if isinstance(v, str) and v.startswith(("https://", "http://")))
