"""The GoAPI adapter against the sandbox (a real GoAPI-compatible server) and, for the
failures the sandbox does not produce, a small fake answering documented payloads."""

from __future__ import annotations

import asyncio
from typing import Any
from urllib.parse import parse_qs, urlsplit
from uuid import uuid4

import httpx
import pytest
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse

from imagetron_contracts.models.images import ProcessMode, TaskCommand
from imagetron_images.adapters.goapi import CAPABILITIES as GOAPI_CAPABILITIES
from imagetron_images.adapters.goapi import GoApiProvider
from imagetron_images.app.ports import (
    MalformedProviderMessage,
    ProviderBusy,
    ProviderRejected,
    ProviderTaskNotFound,
    ProviderUnavailable,
)
from imagetron_images.domain import Capability, ProviderRequest, ProviderStatus
from imagetron_platform.webhook_tokens import verify_webhook_token
from imagetron_sandbox import SandboxSettings, create_app

API_KEY = "test-goapi-key"
SECRET = "test-webhook-secret"
TOKEN_KEY = "test-token-key"
FAST = {
    "pending_ms": 20,
    "progress_interval_ms": 25,
    "webhook_backoff_ms": 20,
    "grid_long_side": 256,
}


def request(**overrides: Any) -> ProviderRequest:
    fields: dict[str, Any] = {
        "task_id": uuid4(),
        "owner_id": uuid4(),
        "command": TaskCommand.imagine,
        "prompt_text": "a paper boat on a puddle",
        "aspect_ratio": "16:9",
        "process_mode": ProcessMode.relax,
    }
    return ProviderRequest(**(fields | overrides))


class Receiver:
    """Stands in for the gateway's webhook route."""

    def __init__(self) -> None:
        self.calls: list[dict[str, Any]] = []

    def app(self) -> FastAPI:
        app = FastAPI()

        @app.post("/webhooks/goapi/{task_id}")
        async def hook(task_id: str, request: Request) -> dict[str, str]:
            self.calls.append({
                "task_id": task_id,
                "token": request.query_params.get("token"),
                "secret": request.headers.get("x-webhook-secret"),
                "body": await request.json(),
            })  # fmt: skip
            return {"status": "accepted"}

        return app


@pytest.fixture
async def goapi(serve):
    receiver = Receiver()
    settings = lambda port: create_app(  # noqa: E731
        SandboxSettings(port=port, goapi_api_key=API_KEY, **FAST)
    )
    async with (
        serve(receiver.app()) as receiver_url,
        serve(settings) as sandbox_url,
        httpx.AsyncClient(timeout=5) as client,
    ):
        provider = GoApiProvider(
            client, base_url=sandbox_url, api_key=API_KEY, webhook_public_base_url=receiver_url,
            webhook_secret=SECRET, webhook_token_key=TOKEN_KEY,
        )  # fmt: skip
        yield provider, receiver, sandbox_url, client


async def test_imagine_round_trip_through_callbacks(goapi, wait_for) -> None:
    provider, receiver, _, _ = goapi
    req = request()
    provider_task_id = await provider.submit(req)

    async def finished() -> list[Any]:
        updates = [provider.parse_callback(c["body"]) for c in receiver.calls]
        return updates if updates and updates[-1].status is ProviderStatus.completed else []

    updates = await wait_for(finished)
    assert {c["task_id"] for c in receiver.calls} == {str(req.task_id)}
    assert all(c["secret"] == SECRET for c in receiver.calls)
    assert all(
        verify_webhook_token(TOKEN_KEY, "goapi", req.task_id, c["token"]) for c in receiver.calls
    )
    assert all(u.provider_task_id == provider_task_id for u in updates)
    assert all(u.command is TaskCommand.imagine for u in updates)
    assert updates[0].status is ProviderStatus.queued
    progress = [u.progress for u in updates if u.status is ProviderStatus.running]
    assert progress == sorted(progress)
    done = updates[-1]
    assert done.image_url is not None
    assert len(done.split_urls) == 4
    assert done.error is None


async def test_fetch_reports_the_providers_view(goapi, wait_for) -> None:
    provider, _, _, _ = goapi
    provider_task_id = await provider.submit(request())

    async def completed() -> Any:
        update = await provider.fetch(provider_task_id)
        return update if update.status is ProviderStatus.completed else None

    update = await wait_for(completed)
    assert update.image_url is not None
    assert len(update.split_urls) == 4


def test_goapi_can_do_every_command_and_cancel() -> None:
    every_command = {
        Capability.imagine, Capability.reroll, Capability.variation, Capability.upscale,
    }  # fmt: skip
    assert every_command | {Capability.cancel} == GOAPI_CAPABILITIES


async def test_cancel_stops_a_pending_task(goapi, wait_for) -> None:
    provider, receiver, _, _ = goapi
    req = request(prompt_text="a slow boat --sandbox-queue-delay=5000")
    provider_task_id = await provider.submit(req)
    await provider.cancel(provider_task_id)  # the answer carries no task: that is fine

    update = await provider.fetch(provider_task_id)
    assert update.status is ProviderStatus.cancelled

    async def cancelled_by_callback() -> Any:
        updates = [provider.parse_callback(c["body"]) for c in receiver.calls]
        return [u for u in updates if u.status is ProviderStatus.cancelled]

    assert await wait_for(cancelled_by_callback)


async def test_cancel_of_a_finished_task_is_refused(goapi, wait_for) -> None:
    provider, *_ = goapi
    provider_task_id = await provider.submit(request())

    async def completed() -> Any:
        update = await provider.fetch(provider_task_id)
        return update if update.status is ProviderStatus.completed else None

    await wait_for(completed)
    with pytest.raises(ProviderRejected, match="only pending"):
        await provider.cancel(provider_task_id)


async def test_a_task_the_provider_does_not_know_is_not_found(goapi) -> None:
    provider, *_ = goapi
    # e.g. after the provider restarted and forgot its tasks
    with pytest.raises(ProviderTaskNotFound, match="does not know"):
        await provider.fetch(str(uuid4()))


async def test_a_wrong_api_key_is_a_permanent_refusal(goapi) -> None:
    _, _, sandbox_url, client = goapi
    wrong = GoApiProvider(
        client, base_url=sandbox_url, api_key="nope", webhook_public_base_url="http://gw",
        webhook_secret=SECRET, webhook_token_key=TOKEN_KEY,
    )  # fmt: skip
    with pytest.raises(ProviderRejected, match="401"):
        await wrong.submit(request())


async def test_an_invalid_request_is_a_permanent_refusal(goapi) -> None:
    provider, *_ = goapi
    with pytest.raises(ProviderRejected):
        await provider.submit(request(aspect_ratio="0:0"))


async def test_an_unreachable_provider_is_transient() -> None:
    async with httpx.AsyncClient(timeout=2) as client:
        provider = GoApiProvider(
            client, base_url="http://127.0.0.1:9", api_key=API_KEY,
            webhook_public_base_url="http://gw", webhook_secret=SECRET, webhook_token_key=TOKEN_KEY,
        )  # fmt: skip
        with pytest.raises(ProviderUnavailable):
            await provider.submit(request())


# --- against a fake, for what the sandbox does not do -----------------------------------


class FakeGoApi:
    def __init__(self) -> None:
        self.received: list[dict[str, Any]] = []
        self.answer: tuple[int, Any] = (200, {"code": 200, "data": {
            "task_id": "goapi-1", "task_type": "imagine", "status": "pending",
        }, "message": "success"})  # fmt: skip

    def app(self) -> FastAPI:
        app = FastAPI()

        @app.post("/api/v1/task")
        async def create(request: Request) -> JSONResponse:
            self.received.append({"headers": dict(request.headers), "body": await request.json()})
            status, body = self.answer
            return JSONResponse(body, status_code=status)

        return app


@pytest.fixture
async def fake_goapi(serve):
    fake = FakeGoApi()
    async with serve(fake.app()) as url, httpx.AsyncClient(timeout=5) as client:
        yield fake, GoApiProvider(
            client, base_url=url + "/", api_key=API_KEY,
            webhook_public_base_url="https://gateway.example/", webhook_secret=SECRET,
            webhook_token_key=TOKEN_KEY,
        )  # fmt: skip


async def test_submit_sends_the_documented_request(fake_goapi) -> None:
    fake, provider = fake_goapi
    req = request()
    assert await provider.submit(req) == "goapi-1"

    (received,) = fake.received
    assert received["headers"]["x-api-key"] == API_KEY
    body = received["body"]
    assert (body["model"], body["task_type"]) == ("midjourney", "imagine")
    assert body["input"] == {
        "prompt": "a paper boat on a puddle", "aspect_ratio": "16:9",
        "process_mode": "relax", "skip_prompt_check": False,
    }  # fmt: skip
    webhook = body["config"]["webhook_config"]
    assert webhook["secret"] == SECRET
    url = urlsplit(webhook["endpoint"])
    assert (url.scheme, url.netloc, url.path) == (
        "https", "gateway.example", f"/webhooks/goapi/{req.task_id}",
    )  # fmt: skip
    (token,) = parse_qs(url.query)["token"]
    assert verify_webhook_token(TOKEN_KEY, "goapi", req.task_id, token)


async def test_an_upscale_names_its_origin(fake_goapi) -> None:
    fake, provider = fake_goapi
    await provider.submit(request(
        command=TaskCommand.upscale, origin_provider_task_id="goapi-0", origin_index=2,
    ))  # fmt: skip
    body = fake.received[0]["body"]
    assert (body["task_type"], body["input"]) == (
        "upscale", {"origin_task_id": "goapi-0", "index": "2"},
    )  # fmt: skip


@pytest.mark.parametrize(
    ("status", "body", "error"),
    [
        (500, {"code": 500, "data": None, "message": "internal"}, ProviderUnavailable),
        (502, "<html>bad gateway</html>", ProviderUnavailable),
        (503, {}, ProviderUnavailable),
        (429, {"code": 429, "message": "too many requests"}, ProviderBusy),
        (200, {"code": 429, "data": None, "message": "queue full"}, ProviderBusy),
        (400, {"code": 400, "data": None, "message": "invalid prompt"}, ProviderRejected),
        (402, {"code": 402, "message": "insufficient credits"}, ProviderRejected),
        (200, {"code": 500, "data": None, "message": "busy"}, ProviderUnavailable),
        (200, {"code": 400, "data": None, "message": "banned prompt"}, ProviderRejected),
        (200, {"code": 200, "data": {"no": "task"}}, MalformedProviderMessage),
        (200, ["not", "an", "object"], MalformedProviderMessage),
    ],
)
async def test_provider_errors_are_classified(fake_goapi, status, body, error) -> None:
    fake, provider = fake_goapi
    fake.answer = (status, body)
    with pytest.raises(error):
        await provider.submit(request())


async def test_a_slow_provider_is_transient(serve) -> None:
    app = FastAPI()

    @app.post("/api/v1/task")
    async def slow() -> dict[str, str]:
        await asyncio.sleep(0.5)
        return {}

    async with serve(app) as url, httpx.AsyncClient(timeout=0.1) as client:
        provider = GoApiProvider(
            client, base_url=url, api_key=API_KEY, webhook_public_base_url="http://gw",
            webhook_secret=SECRET, webhook_token_key=TOKEN_KEY,
        )  # fmt: skip
        with pytest.raises(ProviderUnavailable):
            await provider.submit(request())


# --- callbacks, as documented -----------------------------------------------------------


def callback(status: str, **data: Any) -> dict[str, Any]:
    return {"timestamp": 1764000000, "data": {
        "task_id": "goapi-9", "model": "midjourney", "task_type": "imagine", "status": status,
        **data,
    }}  # fmt: skip


# Parsing needs no connection: the client is never used.
_PARSER = GoApiProvider(
    httpx.AsyncClient(), base_url="http://x", api_key="k", webhook_public_base_url="http://g",
    webhook_secret="s", webhook_token_key="t",
)  # fmt: skip


def parse(body: dict[str, Any]) -> Any:
    return _PARSER.parse_callback(body)


@pytest.mark.parametrize(
    ("status", "expected"),
    [
        ("pending", ProviderStatus.queued),
        ("staged", ProviderStatus.queued),
        ("processing", ProviderStatus.running),
        ("Processing", ProviderStatus.running),
        ("running", ProviderStatus.running),
        ("completed", ProviderStatus.completed),
        ("failed", ProviderStatus.failed),
        ("cancelled", ProviderStatus.cancelled),
        ("canceled", ProviderStatus.cancelled),
    ],
)
def test_statuses(status: str, expected: ProviderStatus) -> None:
    assert parse(callback(status)).status is expected


def test_a_completed_callback_carries_the_grid_and_its_splits() -> None:
    update = parse(callback("completed", output={
        "image_url": "https://img/grid.png",
        "image_urls": [f"https://img/{i}.png" for i in range(1, 5)],
        "task_progress": 100,
    }))  # fmt: skip
    assert update.image_url == "https://img/grid.png"
    assert update.split_urls == tuple(f"https://img/{i}.png" for i in range(1, 5))
    assert update.progress == 100


def test_temporary_urls_stand_in_for_missing_splits() -> None:
    update = parse(callback("completed", output={
        "image_url": "https://img/grid.png", "image_urls": None,
        "temporary_image_urls": ["https://tmp/1.png", "https://tmp/2.png"],
    }))  # fmt: skip
    assert update.split_urls == ("https://tmp/1.png", "https://tmp/2.png")


def test_a_processing_callback_reports_progress_and_preview() -> None:
    update = parse(callback("processing", output={
        "image_url": "", "task_progress": 45,
        "intermediate_image_urls": ["https://img/p1.png", "https://img/p2.png"],
    }))  # fmt: skip
    assert (update.progress, update.preview_url) == (45, "https://img/p2.png")
    assert update.image_url is None
    assert update.split_urls == ()


def test_empty_strings_mean_nothing_yet() -> None:
    update = parse(callback("pending", output={"image_url": "", "image_urls": None}))
    assert (update.image_url, update.preview_url, update.split_urls) == (None, None, ())


def test_a_failed_callback_carries_the_providers_message() -> None:
    update = parse(callback("failed", error={
        "code": 10000, "message": "failed to generate image", "raw_message": "internal",
    }))  # fmt: skip
    assert update.error == "failed to generate image"


def test_a_failure_without_message_falls_back_to_the_raw_message() -> None:
    update = parse(callback("failed", error={"code": 1, "message": "", "raw_message": "boom"}))
    assert update.error == "boom"


@pytest.mark.parametrize(
    "body",
    [
        {},
        {"timestamp": 1, "data": None},
        {"timestamp": 1, "data": {"task_id": "x"}},
        callback("exploded"),
        {"timestamp": 1, "data": {"task_id": "x", "task_type": "describe", "status": "pending"}},
    ],
)
def test_malformed_callbacks_are_refused(body: dict[str, Any]) -> None:
    with pytest.raises(MalformedProviderMessage):
        parse(body)
