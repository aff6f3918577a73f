"""Reroll, variation, upscale, cancel and image retry, with fakes of every port."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any
from uuid import UUID, uuid4

import pytest

from imagetron_contracts.models.images import (
    ImageKind,
    ImageQuery,
    ImagineCommand,
    PersistImageJob,
    ProcessMode,
    ProviderCallback,
    RerollCommand,
    SubmitTaskJob,
    TaskAction,
    TaskCommand,
    TaskQuery,
    TaskStatus,
    UpscaleCommand,
    VariationCommand,
    VariationStrength,
)
from imagetron_images.app import callbacks, images, tasks
from imagetron_images.app.dispatch import Slots
from imagetron_images.app.ports import DownloadRefused, ProviderRejected, ProviderUnavailable
from imagetron_images.domain import (
    Capability,
    GenerationTask,
    ProviderStatus,
    ProviderUpdate,
    task_id_for,
)
from imagetron_platform.errors import (
    BadGateway,
    Conflict,
    InvalidRequest,
    NotFound,
    ServiceTimeout,
)
from imagetron_platform.jobs import Delivery

GRID = "https://cdn.example/grid.png"
SPLITS = tuple(f"https://cdn.example/{i}.png" for i in range(1, 5))
GRID_ACTIONS = [
    *(TaskAction(f"upscale{i}") for i in range(1, 5)),
    *(TaskAction(f"variation{i}") for i in range(1, 5)),
    TaskAction.reroll,
]
NOW = datetime(2026, 11, 24, 12, tzinfo=UTC)

SLOTS = Slots(per_provider=100)  # tasks in flight per provider: not the subject here


async def new_task(world: Any, owner: UUID | None = None) -> Any:
    cmd = ImagineCommand(owner_id=owner or uuid4(), prompt_id=uuid4(), prompt_text="a red fox")
    return await tasks.imagine(
        cmd,
        world.uow,
        world.deps().providers,
        default_provider="goapi",
        slots=SLOTS,
        prompt_ledger=world.ledger,
    )


async def submitted_task(world: Any, owner: UUID | None = None) -> GenerationTask:
    task = await new_task(world, owner)
    return await submit(world, task.id, task.owner_id)


def completed(provider_task_id: str) -> ProviderUpdate:
    return ProviderUpdate(
        provider_task_id=provider_task_id, command=TaskCommand.imagine,
        status=ProviderStatus.completed, image_url=GRID, split_urls=SPLITS,
    )  # fmt: skip


def running(provider_task_id: str, progress: int) -> ProviderUpdate:
    return ProviderUpdate(
        provider_task_id=provider_task_id, command=TaskCommand.imagine,
        status=ProviderStatus.running, progress=progress,
    )  # fmt: skip


async def apply(world: Any, task_id: UUID, update: ProviderUpdate, msg: str) -> None:
    callback = ProviderCallback(
        provider="goapi", task_id=task_id, received_at=datetime.now(UTC), body={"update": update}
    )
    await callbacks.apply_provider_callback(
        callback, Delivery(msg), world.uow, world.deps().providers
    )


def payloads(world: Any, subject_suffix: str) -> list[dict[str, Any]]:
    return [m.payload for m in world.uow.outbox if m.subject.endswith(subject_suffix)]


async def completed_grid(world: Any, owner: UUID | None = None) -> GenerationTask:
    task = await submitted_task(world, owner)
    assert task.provider_task_id is not None
    await apply(world, task.id, completed(task.provider_task_id), f"done-{task.id}")
    return world.uow.task(task.id)


async def submit(world: Any, task_id: UUID, owner: UUID) -> GenerationTask:
    await tasks.submit_task(
        SubmitTaskJob(task_id=task_id, owner_id=owner),
        Delivery(f"submit-{task_id}"),
        world.uow,
        world.deps().providers,
    )
    return world.uow.task(task_id)


def providers(world: Any) -> Any:
    return world.deps().providers


class TestUpscale:
    async def test_creates_a_pending_upscale_of_the_chosen_version(self, world) -> None:
        grid = await completed_grid(world)
        task = await tasks.upscale(
            UpscaleCommand(owner_id=grid.owner_id, task_id=grid.id, index=3),
            world.uow,
            providers(world),
            slots=SLOTS,
            prompt_ledger=world.ledger,
        )
        assert (task.command, task.status) == (TaskCommand.upscale, TaskStatus.pending)
        assert (task.origin_task_id, task.origin_index) == (grid.id, 3)
        assert (task.prompt_id, task.prompt_text, task.provider) == (
            grid.prompt_id,
            grid.prompt_text,
            grid.provider,
        )
        assert task.actions == [TaskAction.cancel]
        assert payloads(world, "task.created")[-1]["task"]["id"] == str(task.id)
        assert world.uow.subjects()[-1] == "work.images.submit"

    async def test_is_submitted_against_the_origins_provider_task(self, world) -> None:
        grid = await completed_grid(world)
        task = await tasks.upscale(
            UpscaleCommand(owner_id=grid.owner_id, task_id=grid.id, index=2),
            world.uow,
            providers(world),
            slots=SLOTS,
            prompt_ledger=world.ledger,
        )
        submitted = await submit(world, task.id, task.owner_id)
        assert submitted.status is TaskStatus.submitted
        request = world.provider.requests[-1]
        assert (request.command, request.origin_index) == (TaskCommand.upscale, 2)
        assert request.origin_provider_task_id == grid.provider_task_id

    async def test_completes_with_one_upscale_image_at_the_chosen_index(self, world) -> None:
        grid = await completed_grid(world)
        task = await tasks.upscale(
            UpscaleCommand(owner_id=grid.owner_id, task_id=grid.id, index=4),
            world.uow,
            providers(world),
            slots=SLOTS,
            prompt_ledger=world.ledger,
        )
        submitted = await submit(world, task.id, task.owner_id)
        assert submitted.provider_task_id is not None
        update = ProviderUpdate(
            provider_task_id=submitted.provider_task_id, command=TaskCommand.upscale,
            status=ProviderStatus.completed, image_url="https://cdn.example/up.png",
        )  # fmt: skip
        await apply(world, task.id, update, f"done-{task.id}")
        assert world.uow.task(task.id).status is TaskStatus.completed
        assert [(i.kind, i.index) for i in world.uow.images_of(task.id)] == [(ImageKind.upscale, 4)]
        # An upscale is not a grid: it offers no follow-ups of its own.
        found = await tasks.get_task(
            TaskQuery(owner_id=task.owner_id, task_id=task.id), world.uow, providers(world)
        )
        assert found.actions == []

    async def test_of_a_grid_that_is_not_completed_is_a_conflict(self, world) -> None:
        task = await submitted_task(world)
        with pytest.raises(Conflict, match="only a completed grid"):
            await tasks.upscale(
                UpscaleCommand(owner_id=task.owner_id, task_id=task.id, index=1),
                world.uow,
                providers(world),
                slots=SLOTS,
                prompt_ledger=world.ledger,
            )

    async def test_of_an_upscale_is_a_conflict(self, world) -> None:
        grid = await completed_grid(world)
        up = GenerationTask(
            owner_id=grid.owner_id, prompt_id=grid.prompt_id, command=TaskCommand.upscale,
            provider="goapi", prompt_text="x", aspect_ratio="1:1", process_mode=ProcessMode.fast,
            created_at=NOW, updated_at=NOW, status=TaskStatus.completed, origin_task_id=grid.id,
            origin_index=1,
        )  # fmt: skip
        async with world.uow:
            await world.uow.tasks.add(up)
            await world.uow.commit()
        with pytest.raises(Conflict, match="not a grid"):
            await tasks.upscale(
                UpscaleCommand(owner_id=up.owner_id, task_id=up.id, index=1),
                world.uow,
                providers(world),
                slots=SLOTS,
                prompt_ledger=world.ledger,
            )

    @pytest.mark.parametrize("index", [0, 5, -1])
    def test_an_index_out_of_range_is_invalid(self, index: int) -> None:
        grid = GenerationTask(
            owner_id=uuid4(), prompt_id=uuid4(), command=TaskCommand.imagine, provider="goapi",
            prompt_text="x", aspect_ratio="1:1", process_mode=ProcessMode.fast, created_at=NOW,
            updated_at=NOW, status=TaskStatus.completed,
        )  # fmt: skip
        with pytest.raises(InvalidRequest, match="index from 1 to 4"):
            grid.follow_up(TaskCommand.upscale, index=index, can=frozenset(Capability), now=NOW)

    async def test_of_another_users_task_is_not_found(self, world) -> None:
        grid = await completed_grid(world)
        with pytest.raises(NotFound):
            await tasks.upscale(
                UpscaleCommand(owner_id=uuid4(), task_id=grid.id, index=1),
                world.uow,
                providers(world),
                slots=SLOTS,
                prompt_ledger=world.ledger,
            )

    async def test_a_provider_that_cannot_upscale_is_named_in_a_422(self, world) -> None:
        grid = await completed_grid(world)
        world.provider.capabilities = frozenset({Capability.imagine, Capability.reroll})
        with pytest.raises(InvalidRequest, match="'goapi' cannot do upscale"):
            await tasks.upscale(
                UpscaleCommand(owner_id=grid.owner_id, task_id=grid.id, index=1),
                world.uow,
                providers(world),
                slots=SLOTS,
                prompt_ledger=world.ledger,
            )
        found = await tasks.get_task(
            TaskQuery(owner_id=grid.owner_id, task_id=grid.id), world.uow, providers(world)
        )
        assert found.actions == [TaskAction.reroll]


class TestVariationAndReroll:
    @pytest.mark.parametrize("strength", [VariationStrength.subtle, VariationStrength.strong])
    async def test_variation_records_index_and_strength(self, world, strength) -> None:
        grid = await completed_grid(world)
        task = await tasks.variation(
            VariationCommand(owner_id=grid.owner_id, task_id=grid.id, index=2, strength=strength),
            world.uow,
            providers(world),
            slots=SLOTS,
            prompt_ledger=world.ledger,
        )
        assert (task.command, task.origin_task_id, task.origin_index) == (
            TaskCommand.variation,
            grid.id,
            2,
        )
        assert task.variation_strength is strength
        await submit(world, task.id, task.owner_id)
        assert world.provider.requests[-1].variation_strength is strength

    async def test_variation_is_strong_unless_asked_otherwise(self, world) -> None:
        grid = await completed_grid(world)
        task = await tasks.variation(
            VariationCommand(owner_id=grid.owner_id, task_id=grid.id, index=1),
            world.uow,
            providers(world),
            slots=SLOTS,
            prompt_ledger=world.ledger,
        )
        assert task.variation_strength is VariationStrength.strong
        # A follow-up, too, is reserved on the prompt before the answer.
        assert (grid.prompt_id, task.id) in world.ledger.reserved

    async def test_reroll_and_variation_yield_grids_with_their_own_follow_ups(self, world) -> None:
        grid = await completed_grid(world)
        reroll = await tasks.reroll(
            RerollCommand(owner_id=grid.owner_id, task_id=grid.id),
            world.uow,
            providers(world),
            slots=SLOTS,
            prompt_ledger=world.ledger,
        )
        assert (reroll.command, reroll.origin_task_id, reroll.origin_index) == (
            TaskCommand.reroll,
            grid.id,
            None,
        )
        submitted = await submit(world, reroll.id, reroll.owner_id)
        assert submitted.provider_task_id is not None
        done = ProviderUpdate(
            provider_task_id=submitted.provider_task_id, command=TaskCommand.reroll,
            status=ProviderStatus.completed, image_url="https://cdn.example/g2.png",
            split_urls=SPLITS,
        )  # fmt: skip
        await apply(world, reroll.id, done, f"done-{reroll.id}")
        assert len(world.uow.images_of(reroll.id)) == 5
        found = await tasks.get_task(
            TaskQuery(owner_id=reroll.owner_id, task_id=reroll.id), world.uow, providers(world)
        )
        assert found.actions == GRID_ACTIONS
        # ...and the completion event says so too.
        assert payloads(world, "task.completed")[-1]["task"]["actions"] == [
            a.value for a in GRID_ACTIONS
        ]

    async def test_reroll_of_a_failed_task_is_a_conflict(self, world) -> None:
        task = await submitted_task(world)
        assert task.provider_task_id is not None
        failed = ProviderUpdate(
            provider_task_id=task.provider_task_id, command=TaskCommand.imagine,
            status=ProviderStatus.failed, error="banned prompt",
        )  # fmt: skip
        await apply(world, task.id, failed, f"failed-{task.id}")
        with pytest.raises(Conflict):
            await tasks.reroll(
                RerollCommand(owner_id=task.owner_id, task_id=task.id),
                world.uow,
                providers(world),
                slots=SLOTS,
                prompt_ledger=world.ledger,
            )
        found = await tasks.get_task(
            TaskQuery(owner_id=task.owner_id, task_id=task.id), world.uow, providers(world)
        )
        assert found.actions == []

    async def test_a_provider_that_cannot_vary_is_named_in_a_422(self, world) -> None:
        grid = await completed_grid(world)
        world.provider.capabilities = frozenset({Capability.imagine, Capability.upscale})
        with pytest.raises(InvalidRequest, match="'goapi' cannot do variation"):
            await tasks.variation(
                VariationCommand(owner_id=grid.owner_id, task_id=grid.id, index=1),
                world.uow,
                providers(world),
                slots=SLOTS,
                prompt_ledger=world.ledger,
            )
        with pytest.raises(InvalidRequest, match="'goapi' cannot do reroll"):
            await tasks.reroll(
                RerollCommand(owner_id=grid.owner_id, task_id=grid.id),
                world.uow,
                providers(world),
                slots=SLOTS,
                prompt_ledger=world.ledger,
            )


class TestCancel:
    async def test_a_pending_task_is_cancelled_without_asking_the_provider(self, world) -> None:
        task = await new_task(world)
        cancelled = await tasks.cancel_task(
            TaskQuery(owner_id=task.owner_id, task_id=task.id), world.uow, providers(world)
        )
        assert cancelled.status is TaskStatus.cancelled
        assert cancelled.actions == []
        assert world.provider.cancelled == []
        assert [p["task"]["status"] for p in payloads(world, "task.cancelled")] == ["cancelled"]
        # Its submission job then finds nothing to do.
        after = await submit(world, task.id, task.owner_id)
        assert after.status is TaskStatus.cancelled
        assert world.provider.requests == []

    async def test_a_submitted_task_is_cancelled_at_the_provider_too(self, world) -> None:
        task = await submitted_task(world)
        cancelled = await tasks.cancel_task(
            TaskQuery(owner_id=task.owner_id, task_id=task.id), world.uow, providers(world)
        )
        assert cancelled.status is TaskStatus.cancelled
        assert world.provider.cancelled == [task.provider_task_id]

    async def test_a_provider_that_cannot_cancel_is_not_asked(self, world) -> None:
        task = await submitted_task(world)
        world.provider.capabilities = world.provider.capabilities - {Capability.cancel}
        cancelled = await tasks.cancel_task(
            TaskQuery(owner_id=task.owner_id, task_id=task.id), world.uow, providers(world)
        )
        assert cancelled.status is TaskStatus.cancelled
        assert world.provider.cancelled == []

    async def test_the_provider_refusing_does_not_undo_the_cancellation(self, world) -> None:
        task = await submitted_task(world)
        world.provider.cancel_answers.append(ProviderRejected("only pending tasks"))
        cancelled = await tasks.cancel_task(
            TaskQuery(owner_id=task.owner_id, task_id=task.id), world.uow, providers(world)
        )
        assert cancelled.status is TaskStatus.cancelled
        assert world.uow.task(task.id).status is TaskStatus.cancelled
        assert [p["task"]["status"] for p in payloads(world, "task.cancelled")] == ["cancelled"]

    async def test_an_unreachable_provider_does_not_undo_the_cancellation(self, world) -> None:
        task = await submitted_task(world)
        world.provider.cancel_answers.append(ProviderUnavailable("timed out"))
        cancelled = await tasks.cancel_task(
            TaskQuery(owner_id=task.owner_id, task_id=task.id), world.uow, providers(world)
        )
        assert cancelled.status is TaskStatus.cancelled
        assert world.uow.task(task.id).status is TaskStatus.cancelled

    async def test_a_processing_task_is_cancelled_and_its_slot_freed(self, world) -> None:
        task = await submitted_task(world)
        assert task.provider_task_id is not None
        await apply(world, task.id, running(task.provider_task_id, 30), f"run-{task.id}")
        assert world.uow.task(task.id).status is TaskStatus.processing
        cancelled = await tasks.cancel_task(
            TaskQuery(owner_id=task.owner_id, task_id=task.id), world.uow, providers(world)
        )
        assert cancelled.status is TaskStatus.cancelled
        assert world.provider.cancelled == [task.provider_task_id]
        assert not world.uow.task(task.id).takes_a_slot

    async def test_a_completed_task_cannot_be_cancelled(self, world) -> None:
        grid = await completed_grid(world)
        with pytest.raises(Conflict, match="only a task that has not finished"):
            await tasks.cancel_task(
                TaskQuery(owner_id=grid.owner_id, task_id=grid.id), world.uow, providers(world)
            )
        assert world.provider.cancelled == []

    async def test_another_users_task_is_not_found(self, world) -> None:
        task = await new_task(world)
        with pytest.raises(NotFound):
            await tasks.cancel_task(
                TaskQuery(owner_id=uuid4(), task_id=task.id), world.uow, providers(world)
            )

    async def test_late_callbacks_after_cancel_change_nothing(self, world) -> None:
        task = await submitted_task(world)
        await tasks.cancel_task(
            TaskQuery(owner_id=task.owner_id, task_id=task.id), world.uow, providers(world)
        )
        assert task.provider_task_id is not None
        await apply(world, task.id, completed(task.provider_task_id), f"late-{task.id}")
        assert world.uow.task(task.id).status is TaskStatus.cancelled
        assert world.uow.images_of(task.id) == []


class TestRetryImage:
    async def failed_image(self, world: Any) -> Any:
        grid = await completed_grid(world)
        image = world.uow.images_of(grid.id)[0]
        world.downloader.files[image.source_url] = DownloadRefused("gone")
        await images.persist_image(
            PersistImageJob(image_id=image.id, owner_id=image.owner_id),
            Delivery(f"persist-{image.id}"),
            world.uow,
            world.downloader,
            world.inspector,
            world.store,
            world.deps().providers,
            world.download_slots,
        )
        return world.uow.committed.images[image.id]

    async def test_queues_another_persistence_job(self, world, make_png) -> None:
        image = await self.failed_image(world)
        assert (image.is_persisted, image.error) == (False, "gone")
        view = await images.retry_image(
            ImageQuery(owner_id=image.owner_id, image_id=image.id), world.uow
        )
        assert view.id == image.id
        job = world.uow.outbox[-1]
        assert (job.subject, job.payload["image_id"]) == ("work.images.persist", str(image.id))

        # The new job is a new message: it is applied although the first one was.
        world.downloader.files[image.source_url] = make_png()
        await images.persist_image(
            PersistImageJob(image_id=image.id, owner_id=image.owner_id),
            Delivery(str(job.message_id)),
            world.uow,
            world.downloader,
            world.inspector,
            world.store,
            world.deps().providers,
            world.download_slots,
        )
        stored = world.uow.committed.images[image.id]
        assert (stored.is_persisted, stored.error, stored.attempts) == (True, None, 2)

    async def test_a_stored_image_is_a_conflict(self, world, make_png) -> None:
        image = await self.failed_image(world)
        world.downloader.files[image.source_url] = make_png()
        await images.retry_image(ImageQuery(owner_id=image.owner_id, image_id=image.id), world.uow)
        await images.persist_image(
            PersistImageJob(image_id=image.id, owner_id=image.owner_id),
            Delivery("again"),
            world.uow,
            world.downloader,
            world.inspector,
            world.store,
            world.deps().providers,
            world.download_slots,
        )
        queued = len(world.uow.outbox)
        with pytest.raises(Conflict, match="already stored"):
            await images.retry_image(
                ImageQuery(owner_id=image.owner_id, image_id=image.id), world.uow
            )
        assert len(world.uow.outbox) == queued

    async def test_another_users_image_is_not_found(self, world) -> None:
        image = await self.failed_image(world)
        with pytest.raises(NotFound):
            await images.retry_image(ImageQuery(owner_id=uuid4(), image_id=image.id), world.uow)


class TestCancelDuringSubmission:
    async def test_the_providers_task_is_stopped_too(self, world) -> None:
        task = await new_task(world)
        submit_to_provider = world.provider.submit

        async def accepted_while_cancelled(request: Any) -> str:
            await tasks.cancel_task(
                TaskQuery(owner_id=task.owner_id, task_id=task.id), world.uow, providers(world)
            )
            return await submit_to_provider(request)

        world.provider.submit = accepted_while_cancelled
        await submit(world, task.id, task.owner_id)
        stored = world.uow.task(task.id)
        assert (stored.status, stored.provider_task_id) == (TaskStatus.cancelled, None)
        assert world.provider.cancelled == ["provider-1"]
        assert payloads(world, "task.submitted") == []

    async def test_a_provider_that_cannot_cancel_is_left_alone(self, world) -> None:
        task = await new_task(world)
        world.provider.capabilities = world.provider.capabilities - {Capability.cancel}
        submit_to_provider = world.provider.submit

        async def accepted_while_cancelled(request: Any) -> str:
            await tasks.cancel_task(
                TaskQuery(owner_id=task.owner_id, task_id=task.id), world.uow, providers(world)
            )
            return await submit_to_provider(request)

        world.provider.submit = accepted_while_cancelled
        await submit(world, task.id, task.owner_id)
        assert world.uow.task(task.id).status is TaskStatus.cancelled
        assert world.provider.cancelled == []


# --- a request sent again (its answer was lost) with its request id ----------------------
# The gateway sends a request again when its first answer was lost: the images replica that
# created the task died before answering, or answered after the gateway's deadline (504).
# Before request ids, the second request created a second task, which the client never
# heard of: generated, stored and announced like any other, its five images were the
# "orphan" objects the multi-node test found under image ids the client did not know.


def imagine_command(owner: UUID, prompt: UUID, request_id: str | None) -> ImagineCommand:
    return ImagineCommand(
        owner_id=owner, prompt_id=prompt, prompt_text="a red fox", request_id=request_id
    )


async def imagine_again(world: Any, cmd: ImagineCommand, ledger: Any = None) -> Any:
    return await tasks.imagine(
        cmd, world.uow, providers(world), default_provider="goapi", slots=SLOTS,
        prompt_ledger=ledger or world.ledger,
    )  # fmt: skip


def created(world: Any) -> list[str]:
    return [m.payload["task"]["id"] for m in world.uow.outbox if m.subject.endswith("created")]


async def test_an_imagine_sent_again_answers_the_task_it_created(world) -> None:
    owner, prompt = uuid4(), uuid4()
    cmd = imagine_command(owner, prompt, "request-1")
    first = await imagine_again(world, cmd)
    again = await imagine_again(world, cmd)
    assert again.id == first.id == task_id_for(owner, "request-1")
    assert list(world.uow.committed.tasks) == [first.id]
    assert created(world) == [str(first.id)]  # announced once
    assert world.uow.subjects().count("work.images.submit") == 1  # generated once
    assert world.ledger.reserved == {(prompt, first.id)}
    assert not world.ledger.released


async def test_other_requests_and_requests_without_an_id_are_new_tasks(world) -> None:
    owner, prompt = uuid4(), uuid4()
    ids = {
        (await imagine_again(world, imagine_command(owner, prompt, request_id))).id
        for request_id in ("request-1", "request-2", None, None)
    }
    assert len(ids) == 4
    # Another owner's same request id is another request.
    other = await imagine_again(world, imagine_command(uuid4(), prompt, "request-1"))
    assert other.id not in ids


async def test_a_request_sent_again_while_the_first_is_recorded_gets_its_task(world) -> None:
    """The second attempt found no task, then the first one recorded it: the second
    records nothing, keeps the (shared) reservation and answers the first one's task."""
    owner, prompt = uuid4(), uuid4()
    cmd = imagine_command(owner, prompt, "request-1")

    class FirstAttemptMeanwhile:
        async def reserve(self, owner_id: UUID, prompt_id: UUID, task_id: UUID) -> None:
            await world.ledger.reserve(owner_id, prompt_id, task_id)
            await imagine_again(world, cmd)  # the first attempt, done while this one waits

        async def release(self, owner_id: UUID, prompt_id: UUID, task_id: UUID) -> None:
            await world.ledger.release(owner_id, prompt_id, task_id)

    second = await imagine_again(world, cmd, FirstAttemptMeanwhile())
    assert second.id == task_id_for(owner, "request-1")
    assert list(world.uow.committed.tasks) == [second.id]
    assert created(world) == [str(second.id)]
    assert world.ledger.reserved == {(prompt, second.id)}
    assert not world.ledger.released


async def test_follow_ups_sent_again_answer_the_task_they_created(world) -> None:
    grid = await completed_grid(world)
    owner = grid.owner_id
    commands = (
        (tasks.reroll, RerollCommand(owner_id=owner, task_id=grid.id, request_id="r")),
        (tasks.upscale, UpscaleCommand(owner_id=owner, task_id=grid.id, index=2, request_id="u")),
        (
            tasks.variation,
            VariationCommand(owner_id=owner, task_id=grid.id, index=3, request_id="v"),
        ),
    )
    for handler, cmd in commands:
        before = len(world.uow.committed.tasks)
        first = await handler(cmd, world.uow, providers(world), slots=SLOTS,
                              prompt_ledger=world.ledger)  # fmt: skip
        again = await handler(cmd, world.uow, providers(world), slots=SLOTS,
                              prompt_ledger=world.ledger)  # fmt: skip
        assert again.id == first.id == task_id_for(owner, cmd.request_id)
        assert len(world.uow.committed.tasks) == before + 1
    assert len(created(world)) == 1 + len(commands)  # the grid and one per follow-up


@pytest.mark.parametrize(
    ("failure", "let_go"),
    [
        (ServiceTimeout("No answer on rpc.prompts.generation.reserve within 10 s."), True),
        (BadGateway("The prompts service failed unexpectedly."), True),
        (NotFound("There is no prompt."), False),
        (Conflict("The prompt is archived."), False),
    ],
)
async def test_a_reservation_without_an_answer_is_let_go(world, failure, let_go) -> None:
    """The prompts service may have recorded a reservation whose answer never came back:
    without a release, the prompt could not be deleted until its sweep. A refusal holds
    nothing; no task is recorded either way."""
    owner, prompt = uuid4(), uuid4()

    class Unanswered:
        async def reserve(self, owner_id: UUID, prompt_id: UUID, task_id: UUID) -> None:
            await world.ledger.reserve(owner_id, prompt_id, task_id)  # recorded, maybe
            raise failure

        async def release(self, owner_id: UUID, prompt_id: UUID, task_id: UUID) -> None:
            await world.ledger.release(owner_id, prompt_id, task_id)

    with pytest.raises(type(failure)):
        await imagine_again(world, imagine_command(owner, prompt, "request-1"), Unanswered())
    task_id = task_id_for(owner, "request-1")
    assert world.ledger.released == ({(prompt, task_id)} if let_go else set())
    assert list(world.uow.committed.tasks) == []
