"""The OpenAI Images adapter (the real `openai` SDK) against a fake Images API answering the
documented generation response and error bodies, over real HTTP; results staged in a fake
store. The recorded answers (OpenAI's OpenAPI examples, LocalAI) run in
test_recorded_payloads.py."""

from __future__ import annotations

import base64
import io
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any
from uuid import uuid4

import pytest
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, Response
from PIL import Image as PillowImage

from imagetron_contracts.models.images import ProcessMode, TaskCommand
from imagetron_images.adapters.openai_images import (
    DALL_E_2,
    DALL_E_3,
    GPT_IMAGE,
    OpenAIImagesProvider,
    family_of,
    openai_client,
    size_for,
)
from imagetron_images.app.ports import (
    MalformedProviderMessage,
    ProviderBusy,
    ProviderRejected,
    ProviderUnavailable,
)
from imagetron_images.domain import Capability, ProviderRequest, ProviderStatus
from imagetron_platform.first_use import OnFirstUse

API_KEY = "sk-test-key"
MODEL = "gpt-image-1"


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


def generated(*images: bytes) -> dict[str, Any]:
    """`POST /v1/images/generations` as gpt-image models answer it: base64 only."""
    return {
        "created": 1764000000,
        "background": "opaque", "output_format": "png", "quality": "medium",
        "size": "1536x1024",
        "data": [{"b64_json": base64.b64encode(image).decode()} for image in images],
        "usage": {
            "input_tokens": 12, "output_tokens": 4160, "total_tokens": 4172,
            "input_tokens_details": {"image_tokens": 0, "text_tokens": 12},
        },
    }  # fmt: skip


def error(message: str, type_: str, code: str | None, param: str | None = None) -> dict[str, Any]:
    return {"error": {"message": message, "type": type_, "param": param, "code": code}}


CONTENT_POLICY = error(
    "Your request was rejected as a result of our safety system. Your prompt may contain "
    "text that is not allowed by our safety system.",
    "image_generation_user_error",
    "moderation_blocked",
)
RATE_LIMITED = error(
    "Rate limit reached for gpt-image-1 in organization org-x on images per minute (IPM): "
    "Limit 5, Used 5, Requested 1. Please try again in 12s.",
    "requests",
    "rate_limit_exceeded",
)
NO_QUOTA = error(
    "You exceeded your current quota, please check your plan and billing details.",
    "insufficient_quota",
    "insufficient_quota",
)


def png(color: str) -> bytes:
    out = io.BytesIO()
    PillowImage.new("RGB", (8, 8), color).save(out, format="PNG")
    return out.getvalue()


IMAGES = [png(color) for color in ("red", "green", "blue", "white")]


class FakeOpenAI:
    def __init__(self) -> None:
        self.received: list[dict[str, Any]] = []
        self.answer: tuple[int, Any] = (200, generated(*IMAGES))

    def app(self) -> FastAPI:
        app = FastAPI()

        @app.post("/v1/images/generations")
        async def generations(request: Request) -> Response:
            self.received.append({"headers": dict(request.headers), "body": await request.json()})
            status, answer = self.answer
            if isinstance(answer, str):
                return Response(answer, status_code=status, media_type="text/html")
            return JSONResponse(answer, status_code=status)

        return app


@asynccontextmanager
async def make(
    url: str, store: Any, model: str = MODEL, count: int = 4, timeout: float = 5
) -> AsyncIterator[OpenAIImagesProvider]:
    async with openai_client(base_url=url, api_key=API_KEY, timeout_seconds=timeout) as client:
        yield OpenAIImagesProvider(OnFirstUse(lambda: client), store, model=model, count=count)


@pytest.fixture(scope="module")
async def fake_openai(serve):
    fake = FakeOpenAI()
    async with serve(fake.app()) as url:
        yield fake, url


@pytest.fixture
async def openai(fake_openai, world):
    fake, url = fake_openai
    fake.__init__()  # a fresh fake per test, one server per module
    store = world.store
    async with make(url + "/", store) as provider:
        yield fake, provider, store, url


def test_declares_imagine_only_and_is_synchronous(openai) -> None:
    _, provider, _, _ = openai
    assert provider.name == "openai"
    assert provider.capabilities == {Capability.imagine, Capability.synchronous}


@pytest.mark.parametrize(
    ("aspect_ratio", "size"),
    [
        ("1:1", "1024x1024"),
        ("16:9", "1536x1024"),
        ("3:2", "1536x1024"),
        ("2:3", "1024x1536"),
        ("9:16", "1024x1536"),
        ("weird", "1024x1024"),
        ("0:1", "1024x1024"),
    ],
)
def test_the_aspect_ratio_picks_the_closest_supported_size(aspect_ratio, size) -> None:
    assert size_for(aspect_ratio) == size


async def test_imagine_generates_stages_the_decoded_images_and_fetch_reports_them(openai) -> None:
    fake, provider, store, _ = openai
    req = request(aspect_ratio="2:3")
    provider_task_id = await provider.submit(req)

    (received,) = fake.received
    assert received["headers"]["authorization"] == f"Bearer {API_KEY}"
    assert received["body"] == {
        "model": MODEL, "prompt": "a paper boat on a puddle", "n": 4, "size": "1024x1536",
    }  # fmt: skip
    prefix = f"staging/{req.owner_id}/{req.task_id}/"
    assert all(key.startswith(prefix) for key in store.objects)
    assert sorted(data for data, _ in store.objects.values()) == sorted(IMAGES)

    update = await provider.fetch(provider_task_id)
    assert (update.provider_task_id, update.command, update.status) == (
        provider_task_id, TaskCommand.imagine, ProviderStatus.completed,
    )  # fmt: skip
    assert update.image_url is None, "no grid: the images are the versions"
    assert len(update.split_urls) == 4
    for url, image in zip(update.split_urls, IMAGES, strict=True):
        assert url.startswith("staged://" + prefix)
        assert store.objects[url.removeprefix("staged://")] == (image, "image/png")
    assert len(provider_task_id) <= 200  # the column's size


async def test_fewer_images_than_asked_are_fine(openai) -> None:
    fake, provider, store, _ = openai
    fake.answer = (200, generated(IMAGES[0]))
    update = await provider.fetch(await provider.submit(request()))
    assert len(update.split_urls) == 1
    assert len(store.objects) == 1


@pytest.mark.parametrize(
    ("model", "aspect_ratio", "expected"),
    [
        # gpt-image: up to 4, its three sizes, base64 always (no response_format).
        ("gpt-image-1", "16:9", {"n": 4, "size": "1536x1024"}),
        ("gpt-image-1.5", "2:3", {"n": 4, "size": "1024x1536"}),
        # dall-e-3: one image, its own sizes, asked for base64.
        ("dall-e-3", "16:9", {"n": 1, "size": "1792x1024", "response_format": "b64_json"}),
        ("dall-e-3", "9:16", {"n": 1, "size": "1024x1792", "response_format": "b64_json"}),
        # dall-e-2: squares only.
        ("dall-e-2", "16:9", {"n": 4, "size": "1024x1024", "response_format": "b64_json"}),
        # An OpenAI-compatible server's model: gpt-image's request, whatever answer.
        ("stablediffusion", "3:2", {"n": 4, "size": "1536x1024"}),
    ],
)
async def test_each_model_family_is_asked_what_it_accepts(
    openai, model, aspect_ratio, expected
) -> None:
    fake, _, store, url = openai
    async with make(url, store, model=model) as provider:
        await provider.submit(request(aspect_ratio=aspect_ratio))
    assert fake.received[-1]["body"] == {
        "model": model, "prompt": "a paper boat on a puddle", **expected,
    }  # fmt: skip


@pytest.mark.parametrize(
    ("model", "family"),
    [("gpt-image-1", GPT_IMAGE), ("GPT-Image-2", GPT_IMAGE), ("dall-e-3", DALL_E_3),
     ("dall-e-2", DALL_E_2)],
)  # fmt: skip
def test_model_families(model: str, family: Any) -> None:
    assert family_of(model) is family


async def test_urls_are_kept_for_persistence_and_data_urls_are_decoded(openai) -> None:
    """OpenAI-compatible servers answer with URLs (LocalAI) or `data:` URLs: the https ones
    are persisted like any provider's (through the download guard), not fetched here."""
    fake, provider, store, _ = openai
    data_url = "data:image/png;base64," + base64.b64encode(IMAGES[1]).decode()
    fake.answer = (200, {"created": 1764000000, "data": [
        {"url": "https://images.example/generated-images/b64123.png"}, {"url": data_url},
    ]})  # fmt: skip
    req = request()
    provider_task_id = await provider.submit(req)
    update = await provider.fetch(provider_task_id)
    remote, staged = update.split_urls
    assert remote == "https://images.example/generated-images/b64123.png"
    assert store.objects[staged.removeprefix("staged://")] == (IMAGES[1], "image/png")
    assert provider_task_id.endswith("/u2")
    assert len(provider_task_id) <= 200


async def test_a_content_policy_refusal_is_permanent_with_the_apis_message(openai) -> None:
    fake, provider, store, _ = openai
    fake.answer = (400, CONTENT_POLICY)
    with pytest.raises(ProviderRejected, match=r"moderation_blocked.*rejected as a result of our"):
        await provider.submit(request())
    assert store.objects == {}


async def test_a_rate_limit_means_busy(openai) -> None:
    fake, provider, _, _ = openai
    fake.answer = (429, RATE_LIMITED)
    with pytest.raises(ProviderBusy, match="Rate limit reached"):
        await provider.submit(request())


async def test_no_quota_is_not_a_matter_of_waiting(openai) -> None:
    fake, provider, _, _ = openai
    fake.answer = (429, NO_QUOTA)
    with pytest.raises(ProviderRejected, match="exceeded your current quota"):
        await provider.submit(request())


@pytest.mark.parametrize("status", [500, 502, 503])
async def test_server_errors_are_transient_not_busy(openai, status) -> None:
    fake, provider, _, _ = openai
    fake.answer = (status, error("The server had an error.", "server_error", None))
    with pytest.raises(ProviderUnavailable) as raised:
        await provider.submit(request())
    assert not isinstance(raised.value, ProviderBusy)


async def test_an_html_error_page_is_handled(openai) -> None:
    fake, provider, _, _ = openai
    fake.answer = (502, "<html>Bad gateway</html>")
    with pytest.raises(ProviderUnavailable, match="502"):
        await provider.submit(request())


async def test_an_unreachable_api_is_transient(openai) -> None:
    _, _, store, _ = openai
    async with make("http://127.0.0.1:9", store, timeout=2) as provider:
        with pytest.raises(ProviderUnavailable, match="could not be reached"):
            await provider.submit(request())


@pytest.mark.parametrize(
    "answer",
    [
        {"created": 1764000000, "data": []},
        {"created": 1764000000, "data": [{"revised_prompt": "no image at all"}]},
        {"created": 1764000000, "data": [{"url": "ftp://example.com/a.png"}]},
        {"created": 1764000000, "data": [{"b64_json": "not base64!"}]},
        ["not", "an", "object"],
    ],
)
async def test_an_answer_without_images_is_malformed(openai, answer) -> None:
    fake, provider, store, _ = openai
    fake.answer = (200, answer)
    with pytest.raises(MalformedProviderMessage):
        await provider.submit(request())
    assert store.objects == {}


async def test_only_imagine_is_sent(openai) -> None:
    fake, provider, _, _ = openai
    with pytest.raises(ProviderRejected, match="only imagine"):
        await provider.submit(request(command=TaskCommand.upscale, origin_index=1))
    assert fake.received == []


async def test_no_callbacks_no_cancel_and_foreign_task_ids_are_malformed(openai) -> None:
    _, provider, _, _ = openai
    with pytest.raises(MalformedProviderMessage):
        provider.parse_callback({"data": []})
    with pytest.raises(ProviderRejected):
        await provider.cancel("anything")
    with pytest.raises(MalformedProviderMessage):
        await provider.fetch("../../etc/passwd")
