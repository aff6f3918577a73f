"""OpenAI Images end to end through the handlers: a fake Images API over HTTP, real S3
for staging and storage, the real inspector; the database is the in-memory fake."""

from __future__ import annotations

import base64
import hashlib
import io
from datetime import timedelta
from typing import Any
from uuid import uuid4

import pytest
from fastapi import FastAPI
from fastapi.responses import JSONResponse
from PIL import Image as PillowImage

from imagetron_contracts.models.images import (
    ImageKind,
    ImagineCommand,
    PersistImageJob,
    SubmitTaskJob,
    TaskStatus,
)
from imagetron_images.adapters.image_files import PillowImageInspector
from imagetron_images.adapters.openai_images import OpenAIImagesProvider, openai_client
from imagetron_images.adapters.staging import StagedOrRemoteDownloader
from imagetron_images.adapters.storage import S3ImageStore
from imagetron_images.app import images, tasks
from imagetron_images.app.dispatch import Slots
from imagetron_platform.first_use import OnFirstUse
from imagetron_platform.jobs import Delivery, RetryLater
from imagetron_platform.objects import minio_client

pytestmark = pytest.mark.integration


def png(color: str, size: tuple[int, int]) -> bytes:
    out = io.BytesIO()
    PillowImage.new("RGB", size, color).save(out, format="PNG")
    return out.getvalue()


FILES = [png(c, (48, 32)) for c in ("red", "green", "blue", "white")]
GENERATED = {
    "created": 1764000000,
    "data": [{"b64_json": base64.b64encode(f).decode()} for f in FILES],
    "usage": {"input_tokens": 9, "output_tokens": 4160, "total_tokens": 4169},
}
MODERATION = {
    "error": {
        "message": "Your request was rejected as a result of our safety system.",
        "type": "image_generation_user_error",
        "param": None,
        "code": "moderation_blocked",
    }
}
RATE_LIMITED = {
    "error": {
        "message": "Rate limit reached for images per minute.",
        "type": "requests",
        "param": None,
        "code": "rate_limit_exceeded",
    }
}


@pytest.fixture
async def s3_store(s3_endpoint: str, s3_credentials: Any) -> S3ImageStore:
    def client() -> Any:
        return minio_client(
            s3_endpoint,
            access_key=s3_credentials.access_key,
            secret_key=s3_credentials.secret_key,
            region=s3_credentials.region,
        )

    store = S3ImageStore(
        client(), client(), bucket="imagetron-openai-it", url_ttl=timedelta(minutes=5)
    )
    await store.ensure_bucket()
    return store


@pytest.fixture
async def openai(serve, s3_store):
    answer: dict[str, Any] = {"now": (200, GENERATED)}
    app = FastAPI()

    @app.post("/v1/images/generations")
    async def generations() -> JSONResponse:
        status, body = answer["now"]
        return JSONResponse(body, status_code=status)

    async with serve(app) as url:
        sdk = openai_client(base_url=url, api_key="sk-it", timeout_seconds=5)
        provider = OpenAIImagesProvider(
            OnFirstUse(lambda: sdk), s3_store, model="gpt-image-1", count=4
        )
        yield provider, answer
        await sdk.close()


async def imagine(world: Any, providers: dict[str, Any], attempt: int = 1, last: int = 1) -> Any:
    task = await tasks.imagine(
        ImagineCommand(owner_id=uuid4(), prompt_id=uuid4(), prompt_text="a paper boat",
                       aspect_ratio="3:2"),
        world.uow, providers, default_provider="openai", slots=Slots(per_provider=10),
        prompt_ledger=world.ledger,
    )  # fmt: skip
    await tasks.submit_task(
        SubmitTaskJob(task_id=task.id, owner_id=task.owner_id),
        Delivery(f"submit-{task.id}-{attempt}", attempt, last),
        world.uow, providers,
    )  # fmt: skip
    return world.uow.task(task.id)


async def persist_all(world: Any, found: list[Any], s3_store: S3ImageStore) -> None:
    """Run each image's persistence job: staged URLs from S3, others through the downloader."""
    downloader = StagedOrRemoteDownloader(s3_store, world.downloader)
    for image in found:
        await images.persist_image(
            PersistImageJob(image_id=image.id, owner_id=image.owner_id),
            Delivery(f"persist-{image.id}"),
            world.uow, downloader, PillowImageInspector(max_pixels=10_000), s3_store,
            {}, world.download_slots,
        )  # fmt: skip


async def test_an_imagine_is_generated_staged_and_persisted(world, openai, s3_store) -> None:
    provider, _ = openai
    task = await imagine(world, {"openai": provider})
    assert task.status is TaskStatus.completed
    found = world.uow.images_of(task.id)
    assert [(i.kind, i.index) for i in found] == [(ImageKind.version, n) for n in range(1, 5)]
    assert all(
        i.source_url.startswith(f"staged://staging/{task.owner_id}/{task.id}/") for i in found
    )

    await persist_all(world, found, s3_store)
    stored = world.uow.images_of(task.id)
    assert [i.sha256 for i in stored] == [hashlib.sha256(f).hexdigest() for f in FILES]
    assert [(i.width, i.height, i.content_type) for i in stored] == [(48, 32, "image/png")] * 4
    for image, data in zip(stored, FILES, strict=True):
        assert image.storage_key is not None
        assert await s3_store.get(image.storage_key) == data
    assert world.downloader.requested == []
    # Once stored, the staged copies are deleted (deleting again is no error).
    staged = [i.source_url.removeprefix("staged://") for i in found]
    assert [await s3_store.exists(key) for key in staged] == [False] * 4
    await s3_store.remove(staged[0])


async def test_a_content_policy_refusal_fails_the_task_with_the_apis_message(world, openai) -> None:
    provider, answer = openai
    answer["now"] = (400, MODERATION)
    task = await imagine(world, {"openai": provider})
    assert task.status is TaskStatus.failed
    assert "rejected as a result of our safety system" in (task.error or "")
    assert world.uow.images_of(task.id) == []


async def test_a_rate_limit_keeps_the_task_waiting(world, openai) -> None:
    provider, answer = openai
    answer["now"] = (429, RATE_LIMITED)
    with pytest.raises(RetryLater):
        await imagine(world, {"openai": provider}, attempt=1, last=3)
    task = await imagine(world, {"openai": provider}, attempt=3, last=3)
    assert task.status is TaskStatus.pending
    assert world.uow.subjects().count("work.images.submit") >= 2


async def test_a_server_that_answers_urls_has_them_persisted_like_any_providers(
    world, openai, s3_store
) -> None:
    """An OpenAI-compatible server answering URLs (LocalAI): the task completes at once and
    each URL goes through the download guard at persistence, like any provider's."""
    provider, answer = openai
    urls = [f"https://images.example/generated-images/{n}.png" for n in (1, 2)]
    answer["now"] = (200, {"created": 1764000000, "data": [{"url": u} for u in urls]})
    task = await imagine(world, {"openai": provider})
    assert task.status is TaskStatus.completed
    found = world.uow.images_of(task.id)
    assert [i.source_url for i in found] == urls
    world.downloader.files.update(dict(zip(urls, FILES[:2], strict=True)))
    await persist_all(world, found, s3_store)
    assert world.downloader.requested == urls
    stored = world.uow.images_of(task.id)
    assert [i.sha256 for i in stored] == [hashlib.sha256(f).hexdigest() for f in FILES[:2]]
