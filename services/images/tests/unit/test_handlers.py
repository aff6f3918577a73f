"""The service layer with fakes of every port: one class per use case."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any
from uuid import UUID, uuid4

import pytest

from imagetron_contracts.models.images import (
    ImageKind,
    ImageQuery,
    ImagineCommand,
    ListImagesQuery,
    ListTasksQuery,
    PersistImageJob,
    ProcessMode,
    ProviderCallback,
    SubmitTaskJob,
    TaskCommand,
    TaskQuery,
    TaskStatus,
)
from imagetron_images.app import callbacks, images, previews, tasks
from imagetron_images.app.dispatch import Slots
from imagetron_images.app.ports import (
    DownloadFailed,
    DownloadRefused,
    ProviderRejected,
    ProviderTaskNotFound,
    ProviderUnavailable,
    SourceGone,
    StorageUnavailable,
)
from imagetron_images.domain import ProviderStatus, ProviderUpdate
from imagetron_platform.errors import Conflict, InvalidRequest, NotFound, ServiceUnavailable
from imagetron_platform.jobs import Delivery, RetryLater

GRID = "https://cdn.example/grid.png"
SPLITS = tuple(f"https://cdn.example/{i}.png" for i in range(1, 5))

SLOTS = Slots(per_provider=100)  # tasks in flight per provider: not the subject here


def imagine_cmd(owner: UUID, prompt: UUID | None = None, text: str = "a red fox") -> ImagineCommand:
    return ImagineCommand(
        owner_id=owner, prompt_id=prompt or uuid4(), prompt_text=text, aspect_ratio="3:2",
        process_mode=ProcessMode.turbo,
    )  # fmt: skip


async def new_task(world: Any, owner: UUID | None = None, **kw: Any) -> Any:
    return await tasks.imagine(
        imagine_cmd(owner or uuid4(), **kw),
        world.uow,
        world.deps().providers,
        default_provider="goapi",
        slots=SLOTS,
        prompt_ledger=world.ledger,
    )


async def submitted_task(world: Any, owner: UUID | None = None) -> Any:
    task = await new_task(world, owner)
    await tasks.submit_task(
        SubmitTaskJob(task_id=task.id, owner_id=task.owner_id),
        Delivery(f"submit-{task.id}"),
        world.uow,
        world.deps().providers,
    )
    return world.uow.task(task.id)


def callback(task_id: UUID, update: ProviderUpdate | None) -> ProviderCallback:
    body: dict[str, Any] = {"update": update} if update is not None else {"garbage": True}
    return ProviderCallback(
        provider="goapi", task_id=task_id, received_at=datetime.now(UTC), body=body
    )


def completed(provider_task_id: str) -> ProviderUpdate:
    return ProviderUpdate(
        provider_task_id=provider_task_id, command=TaskCommand.imagine,
        status=ProviderStatus.completed, image_url=GRID, split_urls=SPLITS,
    )  # fmt: skip


async def apply(world: Any, task_id: UUID, update: ProviderUpdate | None, msg: str) -> None:
    await callbacks.apply_provider_callback(
        callback(task_id, update), Delivery(msg), world.uow, world.deps().providers
    )


def payloads(world: Any, subject_suffix: str) -> list[dict[str, Any]]:
    return [m.payload for m in world.uow.outbox if m.subject.endswith(subject_suffix)]


class TestImagine:
    async def test_creates_a_pending_task_with_its_event_and_submission_job(self, world) -> None:
        owner = uuid4()
        task = await tasks.imagine(
            imagine_cmd(owner),
            world.uow,
            world.deps().providers,
            default_provider="goapi",
            slots=SLOTS,
            prompt_ledger=world.ledger,
        )

        assert task.status is TaskStatus.pending
        assert (task.owner_id, task.command, task.provider) == (owner, TaskCommand.imagine, "goapi")
        assert (task.aspect_ratio, task.process_mode) == ("3:2", ProcessMode.turbo)
        assert world.uow.subjects() == [
            f"events.images.{owner}.task.created",
            "work.images.submit",
        ]
        event, job = (m.payload for m in world.uow.outbox)
        assert event["type"] == "task.created"
        assert event["task"]["id"] == str(task.id)
        assert event["id"] == str(world.uow.outbox[0].message_id)
        assert job == {"task_id": str(task.id), "owner_id": str(owner)}
        assert world.uow.commits == 1

    async def test_blank_prompt_is_refused_and_nothing_is_written(self, world) -> None:
        with pytest.raises(InvalidRequest):
            await tasks.imagine(
                imagine_cmd(uuid4(), text=" "),
                world.uow,
                world.deps().providers,
                default_provider="goapi",
                slots=SLOTS,
                prompt_ledger=world.ledger,
            )
        assert world.uow.outbox == []
        assert world.uow.committed.tasks == {}

    async def imagine(self, world: Any, owner: UUID) -> Any:
        return await tasks.imagine(
            imagine_cmd(owner), world.uow, world.deps().providers,
            default_provider="goapi", slots=SLOTS, prompt_ledger=world.ledger,
        )  # fmt: skip

    async def test_the_generation_is_reserved_on_its_prompt_before_the_answer(self, world) -> None:
        task = await self.imagine(world, uuid4())
        assert world.ledger.reserved == {(task.prompt_id, task.id)}
        assert world.ledger.released == set()

    @pytest.mark.parametrize(
        "refusal",
        [NotFound("There is no prompt."), Conflict("archived"), ServiceUnavailable("down")],
    )
    async def test_a_prompt_that_cannot_be_reserved_creates_no_task(self, world, refusal) -> None:
        world.ledger.refuse = refusal
        with pytest.raises(type(refusal)):
            await self.imagine(world, uuid4())
        assert world.uow.committed.tasks == {}
        assert world.uow.outbox == []

    async def test_a_task_that_could_not_be_recorded_lets_its_reservation_go(
        self, world, monkeypatch
    ) -> None:
        async def lost_connection() -> None:
            raise ConnectionResetError("the database went away")

        monkeypatch.setattr(world.uow, "commit", lost_connection)
        with pytest.raises(ConnectionResetError):
            await self.imagine(world, uuid4())
        assert world.ledger.released == world.ledger.reserved != set()


class TestTaskQueries:
    async def test_get_is_owner_scoped(self, world) -> None:
        task = await new_task(world)
        found = await tasks.get_task(
            TaskQuery(owner_id=task.owner_id, task_id=task.id), world.uow, world.deps().providers
        )
        assert found == task
        with pytest.raises(NotFound):
            await tasks.get_task(
                TaskQuery(owner_id=uuid4(), task_id=task.id), world.uow, world.deps().providers
            )

    async def test_list_pages_newest_first_with_filters(self, world) -> None:
        owner, prompt = uuid4(), uuid4()
        made = [await new_task(world, owner, prompt=prompt) for _ in range(5)]
        await new_task(world, owner)  # another prompt
        await new_task(world)  # another owner
        seen: list[UUID] = []
        cursor = None
        while True:
            page = await tasks.list_tasks(
                ListTasksQuery(owner_id=owner, prompt_id=prompt, limit=2, cursor=cursor),
                world.uow,
                world.deps().providers,
            )
            seen += [t.id for t in page.items]
            if page.next_cursor is None:
                break
            cursor = page.next_cursor
        expected = sorted(made, key=lambda t: (t.created_at, t.id), reverse=True)
        assert seen == [t.id for t in expected]

    async def test_list_by_status(self, world) -> None:
        owner = uuid4()
        pending = await new_task(world, owner)
        submitted = await submitted_task(world, owner)
        page = await tasks.list_tasks(
            ListTasksQuery(owner_id=owner, status=TaskStatus.submitted),
            world.uow,
            world.deps().providers,
        )
        assert [t.id for t in page.items] == [submitted.id]
        assert pending.id not in [t.id for t in page.items]

    async def test_a_foreign_cursor_is_an_invalid_request(self, world) -> None:
        with pytest.raises(InvalidRequest):
            await tasks.list_tasks(
                ListTasksQuery(owner_id=uuid4(), cursor="bm9wZQ"), world.uow, world.deps().providers
            )


class TestSubmitTask:
    def job(self, task: Any) -> SubmitTaskJob:
        return SubmitTaskJob(task_id=task.id, owner_id=task.owner_id)

    async def submit(self, world, task, *, attempt: int = 1, msg: str = "m1") -> None:
        await tasks.submit_task(
            self.job(task), Delivery(msg, attempt, 10), world.uow, world.deps().providers
        )

    async def test_submits_and_records_the_provider_task(self, world) -> None:
        task = await new_task(world)
        world.provider.answers = ["goapi-42"]
        await self.submit(world, task)

        (request,) = world.provider.requests
        assert (request.task_id, request.prompt_text, request.aspect_ratio) == (
            task.id, "a red fox", "3:2",
        )  # fmt: skip
        stored = world.uow.task(task.id)
        assert (stored.status, stored.provider_task_id) == (TaskStatus.submitted, "goapi-42")
        (event,) = payloads(world, "task.submitted")
        assert event["task"]["provider_task_id"] == "goapi-42"

    async def test_transient_failure_retries_later_and_changes_nothing(self, world) -> None:
        task = await new_task(world)
        world.provider.answers = [ProviderUnavailable("503")]
        before = list(world.uow.outbox)
        with pytest.raises(RetryLater):
            await self.submit(world, task, attempt=3)
        assert world.uow.task(task.id).status is TaskStatus.pending
        assert world.uow.outbox == before
        assert world.uow.inbox == set(), "a retried job must not be claimed"

    async def test_transient_failure_on_the_last_delivery_fails_the_task(self, world) -> None:
        task = await new_task(world)
        world.provider.answers = [ProviderUnavailable("GoAPI is unavailable (503)")]
        await self.submit(world, task, attempt=10)
        stored = world.uow.task(task.id)
        assert stored.status is TaskStatus.failed
        assert "10 attempts" in (stored.error or "")
        assert len(payloads(world, "task.failed")) == 1

    async def test_permanent_refusal_fails_the_task_with_the_reason(self, world) -> None:
        task = await new_task(world)
        world.provider.answers = [ProviderRejected("GoAPI refused the request (400): bad")]
        await self.submit(world, task)
        stored = world.uow.task(task.id)
        assert (stored.status, stored.error) == (
            TaskStatus.failed, "GoAPI refused the request (400): bad",
        )  # fmt: skip
        (event,) = payloads(world, "task.failed")
        assert event["task"]["error"] == stored.error

    async def test_a_redelivered_job_does_not_submit_twice(self, world) -> None:
        task = await new_task(world)
        await self.submit(world, task, msg="m1")
        await self.submit(world, task, msg="m1", attempt=2)
        await self.submit(world, task, msg="m2")
        assert len(world.provider.requests) == 1
        assert len(payloads(world, "task.submitted")) == 1

    async def test_a_callback_that_overtook_the_submission_is_not_reported_twice(
        self, world
    ) -> None:
        task = await new_task(world)

        async def submit_while_the_callback_lands(request: Any) -> str:
            await apply(world, task.id, ProviderUpdate(
                provider_task_id="goapi-7", command=TaskCommand.imagine,
                status=ProviderStatus.running, progress=10,
            ), "cb-1")  # fmt: skip
            return "goapi-7"

        world.provider.submit = submit_while_the_callback_lands
        await self.submit(world, task)

        stored = world.uow.task(task.id)
        assert (stored.status, stored.provider_task_id) == (TaskStatus.processing, "goapi-7")
        assert len(payloads(world, "task.submitted")) == 1

    async def test_unknown_task_is_dropped(self, world) -> None:
        await tasks.submit_task(
            SubmitTaskJob(task_id=uuid4(), owner_id=uuid4()), Delivery("m"), world.uow, {}
        )
        assert world.uow.outbox == []


class TestProviderCallback:
    async def test_completion_adds_five_images_events_and_persist_jobs(self, world) -> None:
        task = await submitted_task(world)
        await apply(world, task.id, completed(task.provider_task_id), "cb-1")

        stored = world.uow.task(task.id)
        assert (stored.status, stored.progress) == (TaskStatus.completed, 100)
        imgs = world.uow.images_of(task.id)
        assert [(i.kind, i.index, i.source_url) for i in imgs] == [
            (ImageKind.grid, 0, GRID),
            *((ImageKind.version, n, SPLITS[n - 1]) for n in range(1, 5)),
        ]
        (event,) = payloads(world, "task.completed")
        assert event["task"]["status"] == "completed"
        jobs = payloads(world, "work.images.persist")
        assert sorted(j["image_id"] for j in jobs) == sorted(str(i.id) for i in imgs)

    async def test_every_event_of_a_task_carries_its_next_version(self, world) -> None:
        task = await submitted_task(world)
        running = ProviderUpdate(
            provider_task_id=task.provider_task_id, command=TaskCommand.imagine,
            status=ProviderStatus.running, progress=40,
        )  # fmt: skip
        await apply(world, task.id, running, "cb-1")
        await apply(world, task.id, completed(task.provider_task_id), "cb-2")
        await apply(world, task.id, completed(task.provider_task_id), "cb-3")  # a duplicate
        events = [m.payload for m in world.uow.outbox if ".task." in m.subject]
        assert [(e["type"], e["version"]) for e in events] == [
            ("task.created", 1), ("task.submitted", 2), ("task.progress", 3),
            ("task.completed", 4),
        ]  # fmt: skip
        assert world.uow.task(task.id).version == 4
        grid = world.uow.images_of(task.id)[0]
        world.downloader.files[GRID] = DownloadRefused("gone for good")
        await images.persist_image(
            PersistImageJob(image_id=grid.id, owner_id=grid.owner_id), Delivery("p"),
            world.uow, world.downloader, world.inspector, world.store,
            world.deps().providers, world.download_slots,
        )  # fmt: skip
        (failed,) = payloads(world, "image.failed")
        assert failed["version"] == 2

    async def test_duplicate_completed_webhook_is_a_noop(self, world) -> None:
        task = await submitted_task(world)
        await apply(world, task.id, completed(task.provider_task_id), "cb-1")
        outbox, images_before = list(world.uow.outbox), dict(world.uow.committed.images)

        # Same delivery again (inbox), and the same report under another id (state).
        await apply(world, task.id, completed(task.provider_task_id), "cb-1")
        await apply(world, task.id, completed(task.provider_task_id), "cb-2")

        assert world.uow.outbox == outbox
        assert world.uow.committed.images.keys() == images_before.keys()

    async def test_progress_is_reported_once_per_step(self, world) -> None:
        task = await submitted_task(world)
        running = ProviderUpdate(
            provider_task_id=task.provider_task_id, command=TaskCommand.imagine,
            status=ProviderStatus.running, progress=30, preview_url="https://cdn.example/p.png",
        )  # fmt: skip
        await apply(world, task.id, running, "cb-1")
        await apply(world, task.id, running, "cb-2")
        (event,) = payloads(world, "task.progress")
        assert (event["task"]["progress"], event["task"]["preview_url"]) == (
            30, "https://cdn.example/p.png",
        )  # fmt: skip

    async def test_late_progress_after_completion_is_a_noop(self, world) -> None:
        task = await submitted_task(world)
        await apply(world, task.id, completed(task.provider_task_id), "cb-1")
        before = list(world.uow.outbox)
        await apply(world, task.id, ProviderUpdate(
            provider_task_id=task.provider_task_id, command=TaskCommand.imagine,
            status=ProviderStatus.running, progress=70,
        ), "cb-2")  # fmt: skip
        assert world.uow.outbox == before
        assert world.uow.task(task.id).status is TaskStatus.completed

    async def test_failure_reaches_the_owner(self, world) -> None:
        task = await submitted_task(world)
        await apply(world, task.id, ProviderUpdate(
            provider_task_id=task.provider_task_id, command=TaskCommand.imagine,
            status=ProviderStatus.failed, error="moderation",
        ), "cb-1")  # fmt: skip
        (event,) = payloads(world, "task.failed")
        assert event["owner_id"] == str(task.owner_id)
        assert event["task"]["error"] == "moderation"

    async def test_unknown_task_is_acknowledged_without_effect(self, world) -> None:
        await apply(world, uuid4(), completed("goapi-x"), "cb-1")
        assert world.uow.outbox == []

    async def test_malformed_body_is_acknowledged_without_effect(self, world) -> None:
        task = await submitted_task(world)
        before = list(world.uow.outbox)
        await apply(world, task.id, None, "cb-1")
        assert world.uow.outbox == before

    async def test_callback_from_an_unconfigured_provider_is_dropped(self, world) -> None:
        task = await submitted_task(world)
        before = list(world.uow.outbox)
        cb = callback(task.id, completed(task.provider_task_id)).model_copy(
            update={"provider": "replicate"}
        )
        providers = world.deps().providers
        await callbacks.apply_provider_callback(cb, Delivery("x"), world.uow, providers)
        assert world.uow.outbox == before


class TestPersistImage:
    async def completed_images(self, world) -> list[Any]:
        task = await submitted_task(world)
        await apply(world, task.id, completed(task.provider_task_id), "cb-1")
        return world.uow.images_of(task.id)

    async def persist(self, world, image, *, attempt: int = 1, msg: str | None = None) -> None:
        await images.persist_image(
            PersistImageJob(image_id=image.id, owner_id=image.owner_id),
            Delivery(msg or f"persist-{image.id}-{attempt}", attempt, 5),
            world.uow, world.downloader, world.inspector, world.store,
            world.deps().providers, world.download_slots,
        )  # fmt: skip

    async def test_stores_the_bytes_and_records_them(self, world, make_png) -> None:
        grid, *_ = await self.completed_images(world)
        data = make_png()
        world.downloader.files[GRID] = data
        await self.persist(world, grid)

        stored = world.uow.committed.images[grid.id]
        assert stored.is_persisted
        assert stored.attempts == 1
        assert stored.storage_key == f"{grid.owner_id}/{grid.task_id}/grid-0-{grid.id}.png"
        assert world.store.objects[stored.storage_key] == (data, "image/png")
        (event,) = payloads(world, "image.persisted")
        assert event["image"]["sha256"] == stored.sha256
        assert event["image"]["bytes"] == len(data)

    async def test_holds_a_download_slot_of_its_owner_and_host(self, world, make_png) -> None:
        grid, *_ = await self.completed_images(world)
        world.downloader.files[GRID] = make_png()
        await self.persist(world, grid)
        assert world.download_slots.held == [(grid.owner_id, "cdn.example:443")]

    async def test_a_refused_download_fails_the_image_for_good(self, world) -> None:
        grid, *_ = await self.completed_images(world)
        world.downloader.files[GRID] = DownloadRefused("169.254.169.254 is a metadata address")
        await self.persist(world, grid)
        stored = world.uow.committed.images[grid.id]
        assert (stored.is_persisted, stored.attempts) == (False, 1)
        assert "metadata" in (stored.error or "")
        (event,) = payloads(world, "image.failed")
        assert event["image"]["error"] == stored.error

    @pytest.mark.parametrize(
        "failure", [DownloadFailed("connection reset"), StorageUnavailable("S3 down")]
    )
    async def test_transient_failures_retry_then_give_up(self, world, make_png, failure) -> None:
        grid, *_ = await self.completed_images(world)
        if isinstance(failure, DownloadFailed):
            world.downloader.files[GRID] = failure
        else:
            world.downloader.files[GRID] = make_png()
            world.store.failures = [failure] * 5
        for attempt in range(1, 5):
            with pytest.raises(RetryLater):
                await self.persist(world, grid, attempt=attempt)
            assert world.uow.committed.images[grid.id].attempts == attempt
            assert payloads(world, "image.failed") == []
        await self.persist(world, grid, attempt=5)
        stored = world.uow.committed.images[grid.id]
        assert (stored.is_persisted, stored.attempts) == (False, 5)
        assert len(payloads(world, "image.failed")) == 1

    async def test_a_retry_that_succeeds_clears_the_error(self, world, make_png) -> None:
        grid, *_ = await self.completed_images(world)
        world.downloader.files[GRID] = make_png()
        world.store.failures = [StorageUnavailable("S3 down")]
        with pytest.raises(RetryLater):
            await self.persist(world, grid, attempt=1)
        await self.persist(world, grid, attempt=2)
        stored = world.uow.committed.images[grid.id]
        assert (stored.is_persisted, stored.error, stored.attempts) == (True, None, 2)

    async def test_an_expired_url_is_replaced_by_the_providers_fresh_one(
        self, world, make_png
    ) -> None:
        images_ = await self.completed_images(world)
        version = images_[2]  # version 2
        task = world.uow.task(version.task_id)
        fresh = "https://cdn.example/fresh/2.png"
        world.downloader.files[version.source_url] = SourceGone(f"{version.source_url} 404")
        world.downloader.files[fresh] = make_png()
        world.provider.tasks[task.provider_task_id] = ProviderUpdate(
            provider_task_id=task.provider_task_id, command=TaskCommand.imagine,
            status=ProviderStatus.completed, image_url=GRID,
            split_urls=(SPLITS[0], fresh, *SPLITS[2:]),
        )  # fmt: skip
        await self.persist(world, version)
        stored = world.uow.committed.images[version.id]
        assert (stored.is_persisted, stored.source_url) == (True, fresh)
        assert world.downloader.requested == [SPLITS[1], fresh]
        assert world.provider.fetched == [task.provider_task_id]

    @pytest.mark.parametrize("provider_says", ["same URL", "task unknown"])
    async def test_a_gone_url_without_a_fresh_one_is_retried_with_growing_delays(
        self, world, provider_says
    ) -> None:
        grid, *_ = await self.completed_images(world)
        task = world.uow.task(grid.task_id)
        world.downloader.files[GRID] = SourceGone(f"{GRID} answered 410.")
        world.provider.tasks[task.provider_task_id] = (
            completed(task.provider_task_id)
            if provider_says == "same URL"
            else ProviderTaskNotFound("404")
        )
        for attempt in range(1, 5):
            with pytest.raises(RetryLater) as retry:
                await self.persist(world, grid, attempt=attempt)
            assert retry.value.delay is None  # the redelivery's growing delay
            assert payloads(world, "image.failed") == []
        await self.persist(world, grid, attempt=5)
        stored = world.uow.committed.images[grid.id]
        assert (stored.is_persisted, stored.attempts) == (False, 5)
        assert "410" in (stored.error or "")
        assert len(payloads(world, "image.failed")) == 1  # and `images.retry` can try again

    async def test_an_image_is_stored_once(self, world, make_png) -> None:
        grid, *_ = await self.completed_images(world)
        world.downloader.files[GRID] = make_png()
        await self.persist(world, grid, msg="job-1")
        await self.persist(world, grid, msg="job-1")
        await self.persist(world, grid, msg="job-2")
        assert world.downloader.requested == [GRID]
        assert len(payloads(world, "image.persisted")) == 1


class TestImageQueries:
    async def persisted(self, world, make_png) -> Any:
        task = await submitted_task(world)
        await apply(world, task.id, completed(task.provider_task_id), "cb-1")
        grid = world.uow.images_of(task.id)[0]
        world.downloader.files[GRID] = make_png()
        await images.persist_image(
            PersistImageJob(image_id=grid.id, owner_id=grid.owner_id), Delivery("p"),
            world.uow, world.downloader, world.inspector, world.store,
            world.deps().providers, world.download_slots,
        )  # fmt: skip
        return world.uow.committed.images[grid.id]

    async def test_content_url_of_a_stored_image(self, world, make_png) -> None:
        grid = await self.persisted(world, make_png)
        link = await images.image_content_url(
            ImageQuery(owner_id=grid.owner_id, image_id=grid.id), world.uow, world.store
        )
        assert link.content_type == "image/png"
        assert grid.storage_key in link.url

    async def test_content_url_before_storage_is_a_conflict(self, world, make_png) -> None:
        grid = await self.persisted(world, make_png)
        version = world.uow.images_of(grid.task_id)[1]
        with pytest.raises(Conflict):
            await images.image_content_url(
                ImageQuery(owner_id=version.owner_id, image_id=version.id), world.uow, world.store
            )

    async def test_another_owners_image_is_not_found(self, world, make_png) -> None:
        grid = await self.persisted(world, make_png)
        for call in (
            images.get_image(ImageQuery(owner_id=uuid4(), image_id=grid.id), world.uow),
            images.image_content_url(
                ImageQuery(owner_id=uuid4(), image_id=grid.id), world.uow, world.store
            ),
        ):
            with pytest.raises(NotFound):
                await call

    async def test_list_filters_and_pages_in_task_order(self, world) -> None:
        owner = uuid4()
        first = await submitted_task(world, owner)
        second = await submitted_task(world, owner)
        for task in (first, second):
            await apply(world, task.id, completed(task.provider_task_id), f"cb-{task.id}")
        # The second task's images are newer: make it so regardless of the clock's grain.
        for image in world.uow.images_of(second.id):
            world.uow.committed.images[image.id].created_at += timedelta(seconds=1)

        seen, cursor = [], None
        while True:
            page = await images.list_images(
                ListImagesQuery(owner_id=owner, limit=3, cursor=cursor), world.uow
            )
            seen += [(i.task_id, i.index) for i in page.items]
            if not (cursor := page.next_cursor):
                break
        assert seen == [(second.id, n) for n in range(5)] + [(first.id, n) for n in range(5)]

        versions = await images.list_images(
            ListImagesQuery(owner_id=owner, task_id=first.id, kind=ImageKind.version), world.uow
        )
        assert [i.index for i in versions.items] == [1, 2, 3, 4]
        assert (await images.list_images(ListImagesQuery(owner_id=uuid4()), world.uow)).items == []


class TestSubmitWithoutOrigin:
    async def test_a_task_whose_origin_is_unknown_fails_instead_of_retrying(self, world) -> None:
        task = await new_task(world)
        world.uow.committed.tasks[task.id].origin_task_id = uuid4()
        await tasks.submit_task(
            SubmitTaskJob(task_id=task.id, owner_id=task.owner_id),
            Delivery("m1"),
            world.uow,
            world.deps().providers,
        )
        assert world.provider.requests == []
        assert world.uow.task(task.id).status is TaskStatus.failed
        assert len(payloads(world, "task.failed")) == 1


class TestThumbnails:
    async def persisted(self, world, make_png) -> Any:
        return await TestImageQueries().persisted(world, make_png)

    def query(self, image, owner: UUID | None = None) -> ImageQuery:
        return ImageQuery(owner_id=owner or image.owner_id, image_id=image.id)

    async def test_storing_an_image_stores_its_thumbnail_under_the_owners_prefix(
        self, world, make_png
    ) -> None:
        grid = await self.persisted(world, make_png)
        assert grid.thumbnail_key == f"{grid.owner_id}/{grid.task_id}/grid-0-{grid.id}.thumb.webp"
        thumb, content_type = world.store.objects[grid.thumbnail_key]
        assert content_type == "image/webp"
        assert thumb == await world.thumbnailer.thumbnail(world.store.objects[grid.storage_key][0])

        link = await images.image_thumbnail_url(
            self.query(grid), world.uow, world.store, world.thumbnailer
        )
        assert grid.thumbnail_key in link.url
        assert (link.content_type, link.etag) == ("image/webp", f'"{grid.sha256}-t"')
        assert world.thumbnailer.made == 2  # at persistence, and above for the comparison

    async def test_an_image_without_a_thumbnail_gets_one_once_on_request(
        self, world, make_png
    ) -> None:
        world.thumbnailer.refuse = True
        grid = await self.persisted(world, make_png)
        assert grid.is_persisted
        assert grid.thumbnail_key is None
        world.thumbnailer.refuse = False
        for _ in range(2):
            link = await images.image_thumbnail_url(
                self.query(grid), world.uow, world.store, world.thumbnailer
            )
        assert world.thumbnailer.made == 1
        stored = world.uow.committed.images[grid.id]
        assert stored.thumbnail_key is not None
        assert stored.thumbnail_key in link.url
        assert stored.thumbnail_key in world.store.objects

    async def test_no_thumbnail_before_storage_nor_of_anothers_image(self, world, make_png) -> None:
        grid = await self.persisted(world, make_png)
        version = world.uow.images_of(grid.task_id)[1]
        with pytest.raises(Conflict):
            await images.image_thumbnail_url(
                self.query(version), world.uow, world.store, world.thumbnailer
            )
        with pytest.raises(NotFound):
            await images.image_thumbnail_url(
                self.query(grid, uuid4()), world.uow, world.store, world.thumbnailer
            )

    async def test_images_can_be_listed_by_stored_state(self, world, make_png) -> None:
        grid = await self.persisted(world, make_png)

        async def ids(is_persisted: bool | None) -> set[UUID]:
            page = await images.list_images(
                ListImagesQuery(owner_id=grid.owner_id, is_persisted=is_persisted), world.uow
            )
            return {i.id for i in page.items}

        everything = {i.id for i in world.uow.images_of(grid.task_id)}
        assert await ids(True) == {grid.id}
        assert await ids(False) == everything - {grid.id}
        assert await ids(None) == everything


class TestTaskPreview:
    PREVIEW = "https://cdn.example/progress-30.png"

    async def rendering(self, world, preview_url: str | None = PREVIEW) -> Any:
        task = await submitted_task(world)
        update = ProviderUpdate(
            provider_task_id=task.provider_task_id, command=TaskCommand.imagine,
            status=ProviderStatus.running, progress=30, preview_url=preview_url,
        )  # fmt: skip
        await apply(world, task.id, update, "cb-progress")
        return world.uow.task(task.id)

    async def preview(self, world, task, owner: UUID | None = None) -> Any:
        return await previews.task_preview_url(
            TaskQuery(owner_id=owner or task.owner_id, task_id=task.id),
            world.uow, world.downloader, world.thumbnailer, world.store,
        )  # fmt: skip

    async def test_the_preview_is_fetched_once_shrunk_and_kept_under_the_owners_prefix(
        self, world, make_png
    ) -> None:
        task = await self.rendering(world)
        world.downloader.files[self.PREVIEW] = make_png()
        first = await self.preview(world, task)
        second = await self.preview(world, task)
        assert world.downloader.requested == [self.PREVIEW]
        assert first == second
        assert first.content_type == "image/webp"
        [key] = [k for k in world.store.objects if "preview-" in k]
        assert key.startswith(f"{task.owner_id}/{task.id}/")
        assert key in first.url

    async def test_no_preview_yet_or_anothers_task_is_not_found(self, world) -> None:
        task = await self.rendering(world, preview_url=None)
        with pytest.raises(NotFound, match="no preview"):
            await self.preview(world, task)
        task = await self.rendering(world)
        with pytest.raises(NotFound):
            await self.preview(world, task, owner=uuid4())
        assert world.downloader.requested == []

    async def test_a_failing_or_refused_download_is_a_clear_answer(self, world) -> None:
        task = await self.rendering(world)
        world.downloader.files[self.PREVIEW] = DownloadFailed("connection reset")
        with pytest.raises(ServiceUnavailable):
            await self.preview(world, task)
        world.downloader.files[self.PREVIEW] = DownloadRefused("10.0.0.1 is private")
        with pytest.raises(NotFound, match="unusable"):
            await self.preview(world, task)
        assert not any("preview-" in k for k in world.store.objects)
