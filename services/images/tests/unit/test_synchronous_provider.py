"""A synchronous provider (OpenAI Images): its task completes right at submission, through
the callback rules, and its staged results are persisted from our own bucket."""

from __future__ import annotations

import hashlib
import io
from typing import Any
from uuid import UUID, uuid4

import pytest
from PIL import Image as PillowImage

from imagetron_contracts.models.images import (
    ImageKind,
    ImagineCommand,
    PersistImageJob,
    SubmitTaskJob,
    TaskCommand,
    TaskQuery,
    TaskStatus,
)
from imagetron_images.adapters.image_files import PillowImageInspector
from imagetron_images.adapters.staging import StagedOrRemoteDownloader
from imagetron_images.app import images, tasks
from imagetron_images.app.dispatch import Slots
from imagetron_images.app.ports import DownloadRefused, StorageUnavailable
from imagetron_images.domain import Capability, ProviderStatus, ProviderUpdate
from imagetron_platform.jobs import Delivery, RetryLater

PROVIDER_TASK = "openai-task-1"


def png_bytes(color: str = "red") -> bytes:
    out = io.BytesIO()
    PillowImage.new("RGB", (8, 8), color).save(out, format="PNG")
    return out.getvalue()


def imagine_cmd(owner: UUID) -> ImagineCommand:
    return ImagineCommand(owner_id=owner, prompt_id=uuid4(), prompt_text="a red fox")


def synchronous(world: Any) -> dict[str, Any]:
    """The fake provider as a synchronous one whose submission stages four images."""
    world.provider.capabilities = frozenset({Capability.imagine, Capability.synchronous})
    world.provider.answers = [PROVIDER_TASK]
    return {"goapi": world.provider}


def stage(world: Any, task: Any) -> list[bytes]:
    files = [png_bytes(color=c) for c in ("red", "green", "blue", "white")]
    urls = []
    for n, data in enumerate(files, start=1):
        key = f"staging/{task.owner_id}/{task.id}/abc/{n}.png"
        world.store.objects[key] = (data, "image/png")
        urls.append("staged://" + key)
    world.provider.tasks[PROVIDER_TASK] = ProviderUpdate(
        provider_task_id=PROVIDER_TASK, command=TaskCommand.imagine,
        status=ProviderStatus.completed, split_urls=tuple(urls),
    )  # fmt: skip
    return files


async def imagine_and_submit(world: Any, providers: dict[str, Any], msg: str = "s1") -> Any:
    task = await tasks.imagine(
        imagine_cmd(uuid4()),
        world.uow,
        providers,
        default_provider="goapi",
        slots=Slots(per_provider=10),
        prompt_ledger=world.ledger,
    )
    files = stage(world, task)
    await tasks.submit_task(
        SubmitTaskJob(task_id=task.id, owner_id=task.owner_id), Delivery(msg), world.uow,
        providers,
    )  # fmt: skip
    return world.uow.task(task.id), files


async def persist(world: Any, image: Any, delivery: Delivery | None = None) -> None:
    await images.persist_image(
        PersistImageJob(image_id=image.id, owner_id=image.owner_id),
        delivery or Delivery(f"persist-{image.id}"),
        world.uow,
        StagedOrRemoteDownloader(world.store, world.downloader),
        PillowImageInspector(max_pixels=10_000),
        world.store,
        world.deps().providers,
        world.download_slots,
    )


async def test_the_task_completes_at_submission_with_its_versions(world) -> None:
    task, _ = await imagine_and_submit(world, synchronous(world))
    assert (task.status, task.provider_task_id, task.progress) == (
        TaskStatus.completed, PROVIDER_TASK, 100,
    )  # fmt: skip
    assert world.provider.fetched == [PROVIDER_TASK]
    found = world.uow.images_of(task.id)
    assert [(i.kind, i.index) for i in found] == [(ImageKind.version, n) for n in range(1, 5)]
    events = [s.rsplit(".", 1)[-1] for s in world.uow.subjects() if ".task." in s]
    assert events == ["created", "submitted", "completed"]
    assert world.uow.subjects().count("work.images.persist") == 4
    # Rows and events carry staged URLs, never the image bytes.
    assert all(len(str(e.payload)) < 10_000 for e in world.uow.outbox)


async def test_a_redelivered_submission_changes_nothing(world) -> None:
    providers = synchronous(world)
    task, _ = await imagine_and_submit(world, providers)
    before = list(world.uow.outbox)
    await tasks.submit_task(
        SubmitTaskJob(task_id=task.id, owner_id=task.owner_id), Delivery("s1"), world.uow,
        providers,
    )  # fmt: skip
    assert world.uow.outbox == before
    assert len(world.provider.requests) == 1


async def test_staged_images_are_persisted_from_the_bucket_with_their_sha256(world) -> None:
    task, files = await imagine_and_submit(world, synchronous(world))
    for image in world.uow.images_of(task.id):
        await persist(world, image)
    stored = world.uow.images_of(task.id)
    assert all(i.is_persisted for i in stored)
    assert [i.sha256 for i in stored] == [hashlib.sha256(f).hexdigest() for f in files]
    for image, data in zip(stored, files, strict=True):
        assert image.storage_key is not None
        assert image.storage_key.startswith(f"{task.owner_id}/{task.id}/version-")
        assert world.store.objects[image.storage_key] == (data, "image/png")
    assert world.downloader.requested == [], "nothing went through the HTTP downloader"


async def test_a_staged_image_is_deleted_once_persisted_and_not_before(world) -> None:
    task, files = await imagine_and_submit(world, synchronous(world))
    first, second, *_ = world.uow.images_of(task.id)
    staged = [i.source_url.removeprefix("staged://") for i in (first, second)]
    await persist(world, first)
    assert world.uow.committed.images[first.id].is_persisted
    assert staged[0] not in world.store.objects
    # Not stored (the bucket refused it): the staged copy stays for the next attempt.
    world.store.failures.append(StorageUnavailable("s3 is down"))
    with pytest.raises(RetryLater):
        await persist(world, second, Delivery(f"persist-{second.id}", 1, 3))
    assert not world.uow.committed.images[second.id].is_persisted
    assert world.store.objects[staged[1]] == (files[1], "image/png")


async def test_a_staged_copy_left_by_a_failed_deletion_goes_on_redelivery(world) -> None:
    """Stored and committed, then the deletion failed (as a crash right after the commit
    would leave it): the job is redelivered, and its redelivery deletes the copy."""
    task, _ = await imagine_and_submit(world, synchronous(world))
    image = world.uow.images_of(task.id)[0]
    staged = image.source_url.removeprefix("staged://")
    world.store.remove_failures.append(StorageUnavailable("s3 is down"))
    with pytest.raises(RetryLater):
        await persist(world, image, Delivery(f"persist-{image.id}", 1, 3))
    assert world.uow.committed.images[image.id].is_persisted
    assert staged in world.store.objects
    await persist(world, image, Delivery(f"persist-{image.id}", 2, 3))
    assert staged not in world.store.objects
    # On the last delivery a failed deletion is logged, not retried.
    other = world.uow.images_of(task.id)[1]
    world.store.remove_failures.append(StorageUnavailable("s3 is down"))
    await persist(world, other, Delivery(f"persist-{other.id}", 1, 1))
    assert world.uow.committed.images[other.id].is_persisted


async def test_http_urls_still_go_through_the_guarded_downloader() -> None:
    class Remote:
        async def download(self, url: str) -> bytes:
            return url.encode()

    class NoBucket:
        async def get(self, key: str) -> bytes:
            raise AssertionError("read from the bucket")

    downloader = StagedOrRemoteDownloader(NoBucket(), Remote())
    assert await downloader.download("https://cdn.example/1.png") == b"https://cdn.example/1.png"


async def test_a_staged_url_outside_the_images_task_is_refused(world) -> None:
    task, _ = await imagine_and_submit(world, synchronous(world))
    image = world.uow.images_of(task.id)[0]
    other = f"staged://staging/{uuid4()}/{uuid4()}/abc/1.png"
    world.store.objects[other.removeprefix("staged://")] = (png_bytes(), "image/png")
    world.uow.committed.images[image.id].source_url = other
    await persist(world, image)
    failed = world.uow.committed.images[image.id]
    assert (failed.is_persisted, failed.error) == (
        False, f"Image {image.id} names another task's staged file.",
    )  # fmt: skip


async def test_outside_the_staging_area_nothing_is_read(world) -> None:
    downloader = StagedOrRemoteDownloader(world.store, world.downloader)
    world.store.objects["someone/else.png"] = (b"secret", "image/png")
    for url in ("staged://someone/else.png", "staged://staging/../someone/else.png"):
        with pytest.raises(DownloadRefused):
            await downloader.download(url)


async def test_a_task_cancelled_while_generating_stays_cancelled(world) -> None:
    providers = synchronous(world)
    created = await tasks.imagine(
        imagine_cmd(uuid4()),
        world.uow,
        providers,
        default_provider="goapi",
        slots=Slots(per_provider=10),
        prompt_ledger=world.ledger,
    )
    stage(world, created)

    async def generate_while_cancelled(request: Any) -> str:
        await tasks.cancel_task(
            TaskQuery(owner_id=created.owner_id, task_id=created.id), world.uow, providers
        )
        return PROVIDER_TASK

    world.provider.submit = generate_while_cancelled  # type: ignore[method-assign]
    await tasks.submit_task(
        SubmitTaskJob(task_id=created.id, owner_id=created.owner_id), Delivery("s1"),
        world.uow, providers,
    )  # fmt: skip
    assert world.uow.task(created.id).status is TaskStatus.cancelled
    assert world.uow.images_of(created.id) == []
