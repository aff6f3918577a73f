"""The provider registry and what each provider's real callbacks do to a task when they go
through the same handler and rules as GoAPI's (adapters parse; no network needed)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any
from uuid import uuid4

import httpx
import pytest
from pydantic import SecretStr, ValidationError

from imagetron_contracts.models.images import ImageKind, ProcessMode, ProviderCallback, TaskStatus
from imagetron_images.adapters.openai_images import openai_client
from imagetron_images.adapters.providers import build_providers
from imagetron_images.app import callbacks
from imagetron_images.domain import Capability, GenerationTask
from imagetron_images.settings import ImagesSettings
from imagetron_platform.first_use import OnFirstUse
from imagetron_platform.jobs import Delivery


@pytest.fixture
async def providers() -> Any:
    async with httpx.AsyncClient() as client:
        openai = OnFirstUse(
            lambda: openai_client(base_url="http://x", api_key="", timeout_seconds=1)
        )
        yield build_providers(
            ImagesSettings(replicate_api_token=SecretStr("r8_x")), client, world_store(), openai
        )


async def test_every_provider_is_built_with_its_capabilities(providers) -> None:
    assert {name: p.capabilities for name, p in providers.items()} == {
        "goapi": frozenset(Capability) - {Capability.synchronous},
        # `auto`: cancel where the proxy has it (a fork).
        "midjourney_proxy": {
            Capability.imagine, Capability.reroll, Capability.variation, Capability.upscale,
            Capability.cancel,
        },
        "replicate": {Capability.imagine, Capability.cancel},
        "openai": {Capability.imagine, Capability.synchronous},
    }  # fmt: skip


def world_store() -> Any:
    class Staging:
        async def put(self, key: str, data: bytes, content_type: str) -> None:
            raise AssertionError("no generation here")

    return Staging()


def test_openai_as_the_default_needs_an_api_key() -> None:
    with pytest.raises(ValidationError, match="OPENAI_API_KEY"):
        ImagesSettings(provider="openai")
    chosen = ImagesSettings(
        provider="openai", openai_api_key=SecretStr("sk-x"), openai_image_model="gpt-image-1.5"
    )
    assert (chosen.provider, chosen.openai_image_model) == ("openai", "gpt-image-1.5")
    with pytest.raises(ValidationError):
        ImagesSettings(openai_image_count=5)


async def test_openai_sends_no_callbacks(world, providers) -> None:
    task = await _task(world, "openai")
    await _deliver(world, providers, "openai", task, {"data": [{"b64_json": "AAAA"}]}, "o1")
    assert world.uow.task(task.id).status is TaskStatus.pending
    assert world.uow.images_of(task.id) == []


def test_replicate_as_the_default_needs_an_api_token() -> None:
    with pytest.raises(ValidationError, match="REPLICATE_API_TOKEN"):
        ImagesSettings(provider="replicate")
    chosen = ImagesSettings(provider="replicate", replicate_api_token=SecretStr("r8_x"))
    assert chosen.provider == "replicate"
    with pytest.raises(ValidationError):
        ImagesSettings(provider="dall-e")


async def _task(world: Any, provider: str) -> GenerationTask:
    task, _ = GenerationTask.imagine(
        owner_id=uuid4(), prompt_id=uuid4(), prompt_text="a paper boat", aspect_ratio="1:1",
        process_mode=ProcessMode.fast, provider=provider, now=datetime.now(UTC),
    )  # fmt: skip
    async with world.uow:
        await world.uow.tasks.add(task)
        await world.uow.commit()
    return task


async def _deliver(world, providers, provider: str, task, body: dict[str, Any], msg: str) -> None:
    callback = ProviderCallback(
        provider=provider, task_id=task.id, received_at=datetime.now(UTC), body=body
    )
    await callbacks.apply_provider_callback(callback, Delivery(msg), world.uow, providers)


def _mj(status: str, **fields: Any) -> dict[str, Any]:
    return {"id": "1712345678901234", "action": "IMAGINE", "status": status, "progress": "",
            "imageUrl": None, "failReason": None, "buttons": [], **fields}  # fmt: skip


async def test_midjourney_proxy_callbacks_drive_a_task_to_its_grid(world, providers) -> None:
    task = await _task(world, "midjourney_proxy")
    for msg, body in (
        ("m1", _mj("SUBMITTED")),
        ("m2", _mj("IN_PROGRESS", progress="40%", imageUrl="https://cdn/p40.webp")),
        ("m3", _mj("IN_PROGRESS", progress="15%")),  # late: progress never goes back
        ("m4", _mj("SUCCESS", progress="100%", imageUrl="https://cdn/grid.png")),
        ("m4", _mj("SUCCESS", progress="100%", imageUrl="https://cdn/grid.png")),  # duplicate
    ):
        await _deliver(world, providers, "midjourney_proxy", task, body, msg)
    done = world.uow.task(task.id)
    assert (done.status, done.provider_task_id) == (TaskStatus.completed, "1712345678901234")
    images = world.uow.images_of(task.id)
    assert [(i.kind, i.source_url) for i in images] == [(ImageKind.grid, "https://cdn/grid.png")]
    events = [s.rsplit(".", 2)[-2:] for s in world.uow.subjects() if ".task." in s]
    assert [e[1] for e in events] == ["submitted", "progress", "completed"]


async def test_a_midjourney_proxy_failure_fails_the_task_with_its_reason(world, providers) -> None:
    task = await _task(world, "midjourney_proxy")
    await _deliver(world, providers, "midjourney_proxy", task,
                   _mj("FAILURE", failReason="Banned prompt detected"), "f1")  # fmt: skip
    failed = world.uow.task(task.id)
    assert (failed.status, failed.error) == (TaskStatus.failed, "Banned prompt detected")


def _prediction(status: str, **fields: Any) -> dict[str, Any]:
    return {"id": "gm3qorzdhgbfurvjtvhg6dckhu", "model": "black-forest-labs/flux-schnell",
            "status": status, "input": {}, "output": None, "error": None, "logs": "",
            **fields}  # fmt: skip


async def test_replicate_outputs_become_versions_without_a_grid(world, providers) -> None:
    task = await _task(world, "replicate")
    outputs = [f"https://replicate.delivery/out-{i}.webp" for i in range(4)]
    await _deliver(world, providers, "replicate", task, _prediction("starting"), "r1")
    await _deliver(world, providers, "replicate", task,
                   _prediction("succeeded", output=outputs), "r2")  # fmt: skip
    assert world.uow.task(task.id).status is TaskStatus.completed
    images = world.uow.images_of(task.id)
    assert [(i.kind, i.index, i.source_url) for i in images] == [
        (ImageKind.version, n, url) for n, url in enumerate(outputs, start=1)
    ]
    # Each image is persisted at once: Replicate deletes outputs after about an hour.
    assert world.uow.subjects().count("work.images.persist") == 4


async def test_a_failed_prediction_fails_the_task(world, providers) -> None:
    task = await _task(world, "replicate")
    await _deliver(world, providers, "replicate", task,
                   _prediction("failed", error="NSFW content detected."), "r1")  # fmt: skip
    failed = world.uow.task(task.id)
    assert (failed.status, failed.error) == (TaskStatus.failed, "NSFW content detected.")


async def test_a_callback_of_another_provider_for_the_task_is_ignored(world, providers) -> None:
    task = await _task(world, "replicate")
    await _deliver(world, providers, "midjourney_proxy", task,
                   _mj("SUCCESS", imageUrl="https://cdn/grid.png"), "x1")  # fmt: skip
    assert world.uow.task(task.id).status is TaskStatus.pending
