"""The Replicate adapter against a fake predictions API answering the documented
prediction objects and error bodies, over real HTTP."""

from __future__ import annotations

from typing import Any
from urllib.parse import parse_qs, urlsplit
from uuid import uuid4

import httpx
import pytest
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, Response

from imagetron_contracts.models.images import ProcessMode, TaskCommand
from imagetron_images.adapters.replicate import ReplicateProvider
from imagetron_images.app.ports import (
    MalformedProviderMessage,
    ProviderRejected,
    ProviderUnavailable,
)
from imagetron_images.domain import Capability, ProviderRequest, ProviderStatus
from imagetron_platform.webhook_tokens import verify_webhook_token

TOKEN = "r8_test-token"
TOKEN_KEY = "test-token-key"
MODEL = "black-forest-labs/flux-schnell"


def request(**overrides: Any) -> ProviderRequest:
    fields: dict[str, Any] = {
        "task_id": uuid4(),
        "owner_id": uuid4(),
        "command": TaskCommand.imagine,
        "prompt_text": "a paper boat on a puddle",
        "aspect_ratio": "16:9",
        "process_mode": ProcessMode.fast,
    }
    return ProviderRequest(**(fields | overrides))


def prediction(status: str, **fields: Any) -> dict[str, Any]:
    """A prediction object as the API returns it and webhooks carry it."""
    return {
        "id": "gm3qorzdhgbfurvjtvhg6dckhu", "model": MODEL,
        "version": "dp-4d0bcc010b3049749a251855f12800be",
        "input": {"prompt": "a paper boat on a puddle", "aspect_ratio": "16:9"},
        "logs": "", "output": None, "data_removed": False, "error": None, "status": status,
        "created_at": "2026-11-24T15:00:00.000Z",
        "urls": {
            "cancel": "https://api.replicate.com/v1/predictions/gm3qorzdhgbfurvjtvhg6dckhu/cancel",
            "get": "https://api.replicate.com/v1/predictions/gm3qorzdhgbfurvjtvhg6dckhu",
            "web": "https://replicate.com/p/gm3qorzdhgbfurvjtvhg6dckhu",
        },
        **fields,
    }  # fmt: skip


OUTPUTS = [f"https://replicate.delivery/xezq/out-{i}.webp" for i in range(4)]


class FakeReplicate:
    def __init__(self) -> None:
        self.received: list[dict[str, Any]] = []
        self.answer: tuple[int, Any] = (201, prediction("starting"))

    def app(self) -> FastAPI:
        app = FastAPI()

        async def record(request: Request) -> Response:
            body = await request.body()
            self.received.append({
                "method": request.method, "path": request.url.path,
                "headers": dict(request.headers),
                "body": await request.json() if body else None,
            })  # fmt: skip
            status, answer = self.answer
            if isinstance(answer, str):
                return Response(answer, status_code=status, media_type="text/html")
            return JSONResponse(answer, status_code=status)

        for path in (
            "/v1/models/{owner}/{name}/predictions",
            "/v1/predictions",
            "/v1/predictions/{pid}/cancel",
        ):
            app.add_api_route(path, record, methods=["POST"])
        app.add_api_route("/v1/predictions/{pid}", record, methods=["GET"])
        return app


def make(client: httpx.AsyncClient, url: str, **overrides: Any) -> ReplicateProvider:
    options: dict[str, Any] = {
        "base_url": url, "api_token": TOKEN, "model": MODEL, "version": None,
        "extra_input": {"num_outputs": 4, "output_format": "webp"},
        "webhook_public_base_url": "https://gateway.example/", "webhook_token_key": TOKEN_KEY,
    }  # fmt: skip
    return ReplicateProvider(client, **(options | overrides))


@pytest.fixture
async def replicate(serve):
    fake = FakeReplicate()
    async with serve(fake.app()) as url, httpx.AsyncClient(timeout=5) as client:
        yield fake, make(client, url + "/"), url, client


def test_declares_imagine_and_cancel_only(replicate) -> None:
    _, provider, _, _ = replicate
    assert provider.name == "replicate"
    assert provider.capabilities == {Capability.imagine, Capability.cancel}


async def test_imagine_creates_a_prediction_of_the_official_model(replicate) -> None:
    fake, provider, _, _ = replicate
    req = request()
    assert await provider.submit(req) == "gm3qorzdhgbfurvjtvhg6dckhu"
    (received,) = fake.received
    assert (received["method"], received["path"]) == (
        "POST", "/v1/models/black-forest-labs/flux-schnell/predictions",
    )  # fmt: skip
    assert received["headers"]["authorization"] == f"Bearer {TOKEN}"
    body = received["body"]
    assert body["input"] == {
        "num_outputs": 4, "output_format": "webp",
        "prompt": "a paper boat on a puddle", "aspect_ratio": "16:9",
    }  # fmt: skip
    # Every event: `output` and `logs` are where progress comes from.
    assert body["webhook_events_filter"] == ["start", "output", "logs", "completed"]
    assert "version" not in body
    hook = urlsplit(body["webhook"])
    assert (hook.scheme, hook.netloc, hook.path) == (
        "https", "gateway.example", f"/webhooks/replicate/{req.task_id}",
    )  # fmt: skip
    (token,) = parse_qs(hook.query)["token"]
    assert verify_webhook_token(TOKEN_KEY, "replicate", req.task_id, token)


async def test_a_pinned_version_uses_the_predictions_endpoint(replicate) -> None:
    fake, _, url, client = replicate
    provider = make(client, url, version="5c7d5dc6dd8bf75c1acaa8565735e7986bc5b66206b55cca")
    await provider.submit(request())
    (received,) = fake.received
    assert received["path"] == "/v1/predictions"
    assert received["body"]["version"] == "5c7d5dc6dd8bf75c1acaa8565735e7986bc5b66206b55cca"


@pytest.mark.parametrize(
    "command", [TaskCommand.upscale, TaskCommand.variation, TaskCommand.reroll]
)
async def test_other_commands_are_refused_before_any_call(replicate, command) -> None:
    fake, provider, _, _ = replicate
    with pytest.raises(ProviderRejected, match="only imagine"):
        await provider.submit(request(command=command, origin_provider_task_id="x", origin_index=1))
    assert fake.received == []


@pytest.mark.parametrize(
    ("status", "body", "error", "needle"),
    [
        (
            401,
            {
                "title": "Unauthenticated",
                "detail": "You did not pass a valid authentication token",
                "status": 401,
            },
            ProviderRejected,
            "valid authentication",
        ),
        (
            402,
            {
                "title": "Insufficient credit",
                "detail": "You have insufficient credit to run this model.",
                "status": 402,
            },
            ProviderRejected,
            "insufficient credit",
        ),
        (
            422,
            {
                "title": "Input validation failed",
                "detail": "- input.aspect_ratio: aspect_ratio must be one of ...",
                "status": 422,
                "invalid_fields": [
                    {"type": "enum", "field": "input.aspect_ratio", "description": "..."}
                ],
            },
            ProviderRejected,
            "aspect_ratio",
        ),
        (404, {"detail": "Not found."}, ProviderRejected, "Not found"),
        (
            429,
            {
                "title": "Request was throttled",
                "detail": "Request was throttled. Expected available in 1 second.",
                "status": 429,
            },
            ProviderUnavailable,
            "throttled",
        ),
        (500, {"detail": "Internal server error"}, ProviderUnavailable, "500"),
        (503, "<html>unavailable</html>", ProviderUnavailable, "503"),
        (201, {"status": "starting"}, MalformedProviderMessage, "id"),
        (201, ["not", "an", "object"], MalformedProviderMessage, "JSON object"),
    ],
)
async def test_provider_errors_are_classified(replicate, status, body, error, needle) -> None:
    fake, provider, _, _ = replicate
    fake.answer = (status, body)
    with pytest.raises(error, match=needle):
        await provider.submit(request())


async def test_fetch_reads_the_prediction(replicate) -> None:
    fake, provider, _, _ = replicate
    fake.answer = (200, prediction("succeeded", output=OUTPUTS))
    update = await provider.fetch("gm3qorzdhgbfurvjtvhg6dckhu")
    assert (fake.received[0]["method"], fake.received[0]["path"]) == (
        "GET", "/v1/predictions/gm3qorzdhgbfurvjtvhg6dckhu",
    )  # fmt: skip
    assert (update.status, update.split_urls) == (ProviderStatus.completed, tuple(OUTPUTS))


async def test_cancel_posts_to_the_cancel_url(replicate) -> None:
    fake, provider, _, _ = replicate
    fake.answer = (200, prediction("canceled"))
    await provider.cancel("gm3qorzdhgbfurvjtvhg6dckhu")
    assert fake.received[0]["path"] == "/v1/predictions/gm3qorzdhgbfurvjtvhg6dckhu/cancel"


async def test_an_unreachable_api_is_transient() -> None:
    async with httpx.AsyncClient(timeout=2) as client:
        with pytest.raises(ProviderUnavailable):
            await make(client, "http://127.0.0.1:9").submit(request())


# --- webhooks: the prediction object ------------------------------------------------------

_PARSER = make(httpx.AsyncClient(), "http://x")


@pytest.mark.parametrize(
    ("status", "expected"),
    [
        ("starting", ProviderStatus.queued),
        ("processing", ProviderStatus.running),
        ("succeeded", ProviderStatus.completed),
        ("failed", ProviderStatus.failed),
        ("canceled", ProviderStatus.cancelled),
        ("aborted", ProviderStatus.failed),
    ],
)
def test_statuses(status: str, expected: ProviderStatus) -> None:
    update = _PARSER.parse_callback(prediction(status))
    assert (update.status, update.command) == (expected, TaskCommand.imagine)


def test_a_succeeded_prediction_carries_its_outputs_as_versions() -> None:
    update = _PARSER.parse_callback(prediction("succeeded", output=OUTPUTS, metrics={
        "predict_time": 1.27, "total_time": 1.9,
    }))  # fmt: skip
    assert update.image_url is None  # no grid
    assert update.split_urls == tuple(OUTPUTS)


def test_a_single_url_output_is_one_version() -> None:
    update = _PARSER.parse_callback(prediction("succeeded", output=OUTPUTS[0]))
    assert update.split_urls == (OUTPUTS[0],)


def test_outputs_that_are_not_urls_are_ignored() -> None:
    update = _PARSER.parse_callback(prediction("succeeded", output=[None, 3, "data:x", OUTPUTS[1]]))
    assert update.split_urls == (OUTPUTS[1],)


def test_a_processing_prediction_has_no_images_yet_but_a_preview() -> None:
    update = _PARSER.parse_callback(
        prediction("processing", output=OUTPUTS[:2], logs="Using seed: 1\n50%|█████")
    )
    assert (update.split_urls, update.image_url, update.error) == ((), None, None)
    assert update.preview_url == OUTPUTS[1]
    assert update.progress is None  # half a progress bar is not one


@pytest.mark.parametrize(
    ("logs", "progress"),
    [
        ("", None),
        (None, None),
        ("Using seed: 7\nrunning quantized model\n", None),
        ("  0%|          | 0/4 [00:00<?, ?it/s]\n 50%|█████     | 2/4 [00:00<00:00]\n", 50),
        # tqdm redraws in place with carriage returns.
        ("  25%|██▌       | 1/4 [00:00<00:01]\r 75%|███████▌  | 3/4 [00:01<00:00]", 75),
        (" 75%|███████▌  | 3/4 [00:01<00:00]\nSaving output 1\n", 75),
    ],
)
def test_progress_comes_from_the_progress_bar_in_the_logs(logs: Any, progress: Any) -> None:
    assert _PARSER.parse_callback(prediction("processing", logs=logs)).progress == progress


def test_a_succeeded_prediction_whose_outputs_were_removed_says_so() -> None:
    update = _PARSER.parse_callback(prediction("succeeded", output=None, data_removed=True))
    assert update.status is ProviderStatus.failed
    assert "deleted its outputs" in (update.error or "")


def test_a_failed_prediction_carries_its_error() -> None:
    update = _PARSER.parse_callback(
        prediction("failed", error="NSFW content detected. Try running it again.")
    )
    assert update.error == "NSFW content detected. Try running it again."


def test_a_canceled_prediction_says_so() -> None:
    update = _PARSER.parse_callback(prediction("canceled"))
    assert update.status is ProviderStatus.cancelled
    assert "canceled" in (update.error or "")


@pytest.mark.parametrize(
    "body",
    [{}, {"id": "x"}, {"status": "succeeded"}, prediction("exploded")],
)
def test_malformed_callbacks_are_refused(body: dict[str, Any]) -> None:
    with pytest.raises(MalformedProviderMessage):
        _PARSER.parse_callback(body)
