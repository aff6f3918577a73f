"""The task state machine, exhaustively: every status by every kind of provider update."""

from __future__ import annotations

import itertools
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from uuid import uuid4

import pytest
from hypothesis import given
from hypothesis import strategies as st

from imagetron_contracts.models.images import ImageKind, ProcessMode, TaskCommand, TaskStatus
from imagetron_images.domain import (
    GenerationTask,
    ProviderStatus,
    ProviderUpdate,
    TaskCompleted,
    TaskEventType,
    apply_provider_update,
)
from imagetron_images.domain.tasks import (
    CANCELLED_AT_PROVIDER,
    NO_IMAGE_ERROR,
    UNEXPLAINED_FAILURE,
)
from imagetron_platform.errors import Conflict, InvalidRequest

T0 = datetime(2026, 11, 24, 12, 0, tzinfo=UTC)
NOW = T0 + timedelta(minutes=1)
PROVIDER_TASK = "goapi-task-1"
GRID = "https://cdn.example/grid.png"
SPLITS = tuple(f"https://cdn.example/{i}.png" for i in range(1, 5))


def task_in(status: TaskStatus, *, progress: int = 40) -> GenerationTask:
    task, _ = GenerationTask.imagine(
        owner_id=uuid4(), prompt_id=uuid4(), prompt_text="a lighthouse at dawn",
        aspect_ratio="1:1", process_mode=ProcessMode.fast, provider="goapi", now=T0,
    )  # fmt: skip
    if status is TaskStatus.pending:
        return task
    task.status = status
    task.provider_task_id = PROVIDER_TASK
    if status is TaskStatus.processing:
        task.progress = progress
    return task


def update(status: ProviderStatus, **fields: object) -> ProviderUpdate:
    base = ProviderUpdate(
        provider_task_id=PROVIDER_TASK, command=TaskCommand.imagine, status=status
    )
    return replace(base, **fields)


# Every kind of report a provider can send, relative to a processing task at 40 %.
UPDATES: dict[str, ProviderUpdate] = {
    "queued": update(ProviderStatus.queued),
    "running, progress ahead": update(ProviderStatus.running, progress=70, preview_url="p70"),
    "running, same progress": update(ProviderStatus.running, progress=40),
    "running, same progress, new preview": update(
        ProviderStatus.running, progress=40, preview_url="p40"
    ),
    "running, progress behind": update(ProviderStatus.running, progress=10),
    "completed with images": update(ProviderStatus.completed, image_url=GRID, split_urls=SPLITS),
    "completed without images": update(ProviderStatus.completed),
    "failed": update(ProviderStatus.failed, error="banned prompt"),
    "failed without reason": update(ProviderStatus.failed),
    "cancelled at the provider": update(ProviderStatus.cancelled),
    "another provider task": update(
        ProviderStatus.completed, provider_task_id="someone-else", image_url=GRID
    ),
    "another command": update(
        ProviderStatus.completed, command=TaskCommand.upscale, image_url=GRID
    ),
}

S, U = TaskStatus, TaskEventType
# (start status, update) -> (event types, final status). A test below pins that this
# table covers every combination, so a new status or update kind cannot slip through.
EXPECTED: dict[tuple[TaskStatus, str], tuple[tuple[TaskEventType, ...], TaskStatus]] = {
    (S.pending, "queued"): ((U.submitted,), S.submitted),
    (S.pending, "running, progress ahead"): ((U.submitted, U.progress), S.processing),
    (S.pending, "running, same progress"): ((U.submitted, U.progress), S.processing),
    (S.pending, "running, same progress, new preview"): ((U.submitted, U.progress), S.processing),
    (S.pending, "running, progress behind"): ((U.submitted, U.progress), S.processing),
    (S.pending, "completed with images"): ((U.submitted, U.completed), S.completed),
    (S.pending, "completed without images"): ((U.submitted, U.failed), S.failed),
    (S.pending, "failed"): ((U.submitted, U.failed), S.failed),
    (S.pending, "failed without reason"): ((U.submitted, U.failed), S.failed),
    # A pending task has no provider id yet: the (authenticated) callback supplies it.
    (S.pending, "another provider task"): ((U.submitted, U.completed), S.completed),
    (S.pending, "another command"): ((), S.pending),
    (S.pending, "cancelled at the provider"): ((U.submitted, U.cancelled), S.cancelled),
    (S.submitted, "queued"): ((), S.submitted),
    (S.submitted, "running, progress ahead"): ((U.progress,), S.processing),
    (S.submitted, "running, same progress"): ((U.progress,), S.processing),
    (S.submitted, "running, same progress, new preview"): ((U.progress,), S.processing),
    (S.submitted, "running, progress behind"): ((U.progress,), S.processing),
    (S.submitted, "completed with images"): ((U.completed,), S.completed),
    (S.submitted, "completed without images"): ((U.failed,), S.failed),
    (S.submitted, "failed"): ((U.failed,), S.failed),
    (S.submitted, "failed without reason"): ((U.failed,), S.failed),
    (S.submitted, "another provider task"): ((), S.submitted),
    (S.submitted, "another command"): ((), S.submitted),
    (S.submitted, "cancelled at the provider"): ((U.cancelled,), S.cancelled),
    (S.processing, "queued"): ((), S.processing),
    (S.processing, "running, progress ahead"): ((U.progress,), S.processing),
    (S.processing, "running, same progress"): ((), S.processing),
    (S.processing, "running, same progress, new preview"): ((U.progress,), S.processing),
    (S.processing, "running, progress behind"): ((), S.processing),
    (S.processing, "completed with images"): ((U.completed,), S.completed),
    (S.processing, "completed without images"): ((U.failed,), S.failed),
    (S.processing, "failed"): ((U.failed,), S.failed),
    (S.processing, "failed without reason"): ((U.failed,), S.failed),
    (S.processing, "another provider task"): ((), S.processing),
    (S.processing, "another command"): ((), S.processing),
    # The provider stopped it: nothing more will come, so it ends cancelled.
    (S.processing, "cancelled at the provider"): ((U.cancelled,), S.cancelled),
    **{
        (finished, kind): ((), finished)
        for finished in (S.completed, S.failed, S.cancelled)
        for kind in UPDATES
    },
}


def test_the_table_covers_every_status_and_every_update() -> None:
    assert set(EXPECTED) == {(s, k) for s in TaskStatus for k in UPDATES}


@pytest.mark.parametrize(("status", "kind"), sorted(EXPECTED, key=str))
def test_provider_update(status: TaskStatus, kind: str) -> None:
    task = task_in(status)
    before = replace(task)
    expected_events, expected_status = EXPECTED[(status, kind)]

    changes = apply_provider_update(task, UPDATES[kind], NOW)

    assert tuple(c.type for c in changes) == expected_events
    assert task.status is expected_status
    if not changes:
        assert vars(task) == vars(before), "a no-op must not touch the task"
    else:
        assert task.updated_at == NOW
        # Every event carries the task as it was right after that step.
        assert changes[-1].task.status is expected_status
        assert all(c.occurred_at == NOW for c in changes)


def test_events_carry_snapshots_not_the_live_task() -> None:
    task = task_in(TaskStatus.pending)
    submitted, completed = apply_provider_update(task, UPDATES["completed with images"], NOW)
    assert submitted.task.status is TaskStatus.submitted
    assert completed.task.status is TaskStatus.completed
    assert submitted.task is not task


def test_adopting_the_provider_task_id_from_an_early_callback() -> None:
    task = task_in(TaskStatus.pending)
    apply_provider_update(task, UPDATES["running, progress ahead"], NOW)
    assert task.provider_task_id == PROVIDER_TASK


def test_completion_yields_the_grid_and_its_four_versions() -> None:
    task = task_in(TaskStatus.processing)
    (completed,) = apply_provider_update(task, UPDATES["completed with images"], NOW)
    assert isinstance(completed, TaskCompleted)
    assert [(i.kind, i.index, i.source_url) for i in completed.images] == [
        (ImageKind.grid, 0, GRID),
        *((ImageKind.version, n, SPLITS[n - 1]) for n in range(1, 5)),
    ]
    assert all(i.task_id == task.id and i.owner_id == task.owner_id for i in completed.images)
    assert all(not i.is_persisted and i.attempts == 0 for i in completed.images)
    assert task.progress == 100
    assert task.completed_at == NOW


def test_completion_with_only_a_grid_yields_the_grid() -> None:
    task = task_in(TaskStatus.processing)
    (completed,) = apply_provider_update(
        task, update(ProviderStatus.completed, image_url=GRID), NOW
    )
    assert isinstance(completed, TaskCompleted)
    assert [(i.kind, i.index) for i in completed.images] == [(ImageKind.grid, 0)]


def test_an_upscale_completes_with_one_upscaled_image() -> None:
    task = task_in(TaskStatus.processing)
    task.command, task.origin_task_id, task.origin_index = TaskCommand.upscale, uuid4(), 3
    (completed,) = apply_provider_update(
        task,
        update(ProviderStatus.completed, command=TaskCommand.upscale, image_url=GRID),
        NOW,
    )
    assert isinstance(completed, TaskCompleted)
    assert [(i.kind, i.index) for i in completed.images] == [(ImageKind.upscale, 3)]


def test_completion_without_images_fails_the_task_with_a_reason() -> None:
    task = task_in(TaskStatus.processing)
    apply_provider_update(task, UPDATES["completed without images"], NOW)
    assert task.error == NO_IMAGE_ERROR


def test_failure_keeps_the_providers_reason() -> None:
    task = task_in(TaskStatus.submitted)
    apply_provider_update(task, UPDATES["failed"], NOW)
    assert task.error == "banned prompt"


def test_failure_without_a_reason_still_says_something() -> None:
    task = task_in(TaskStatus.submitted)
    apply_provider_update(task, UPDATES["failed without reason"], NOW)
    assert task.error == UNEXPLAINED_FAILURE


def test_a_cancellation_at_the_provider_says_so_in_the_task() -> None:
    task = task_in(TaskStatus.processing)
    (change,) = apply_provider_update(task, update(ProviderStatus.cancelled), NOW)
    assert change.type is TaskEventType.cancelled
    assert task.error == CANCELLED_AT_PROVIDER
    reason = "cancelled by the account owner"
    other = task_in(TaskStatus.submitted)
    apply_provider_update(other, update(ProviderStatus.cancelled, error=reason), NOW)
    assert other.error == reason


def test_progress_records_the_preview() -> None:
    task = task_in(TaskStatus.submitted)
    apply_provider_update(task, UPDATES["running, progress ahead"], NOW)
    assert (task.progress, task.preview_url) == (70, "p70")


def test_progress_is_clamped_to_a_percentage() -> None:
    task = task_in(TaskStatus.submitted)
    apply_provider_update(task, update(ProviderStatus.running, progress=250), NOW)
    assert task.progress == 100


def test_duplicate_completed_webhook_is_a_noop() -> None:
    task = task_in(TaskStatus.processing)
    assert apply_provider_update(task, UPDATES["completed with images"], NOW)
    assert apply_provider_update(task, UPDATES["completed with images"], NOW) == ()


# --- commands -------------------------------------------------------------------------


def test_imagine_creates_a_pending_task_and_says_so() -> None:
    task, created = GenerationTask.imagine(
        owner_id=uuid4(), prompt_id=uuid4(), prompt_text="x", aspect_ratio="16:9",
        process_mode=ProcessMode.relax, provider="goapi", now=T0,
    )  # fmt: skip
    assert task.status is TaskStatus.pending
    assert (task.progress, task.provider_task_id) == (0, None)
    assert created.type is TaskEventType.created
    assert created.task.id == task.id


def test_imagine_refuses_a_blank_prompt() -> None:
    with pytest.raises(InvalidRequest):
        GenerationTask.imagine(
            owner_id=uuid4(), prompt_id=uuid4(), prompt_text="  ", aspect_ratio="1:1",
            process_mode=ProcessMode.fast, provider="goapi", now=T0,
        )  # fmt: skip


CANCELLABLE = {TaskStatus.pending, TaskStatus.submitted, TaskStatus.processing}


@pytest.mark.parametrize("status", list(TaskStatus))
def test_cancel(status: TaskStatus) -> None:
    task = task_in(status)
    if status in CANCELLABLE:
        assert task.cancel(NOW).type is TaskEventType.cancelled
        assert task.status is TaskStatus.cancelled
    else:
        with pytest.raises(Conflict):
            task.cancel(NOW)
        assert task.status is status


@pytest.mark.parametrize("status", list(TaskStatus))
def test_accept_submission(status: TaskStatus) -> None:
    task = task_in(status)
    change = task.accept_submission("goapi-new", NOW)
    if status is TaskStatus.pending:
        assert change is not None
        assert change.type is TaskEventType.submitted
        assert (task.status, task.provider_task_id) == (TaskStatus.submitted, "goapi-new")
    else:
        assert change is None
        assert task.status is status


@pytest.mark.parametrize("status", list(TaskStatus))
def test_reject_submission(status: TaskStatus) -> None:
    task = task_in(status)
    change = task.reject_submission("quota exceeded", NOW)
    if status is TaskStatus.pending:
        assert change is not None
        assert change.type is TaskEventType.failed
        assert (task.status, task.error) == (TaskStatus.failed, "quota exceeded")
    else:
        assert change is None
        assert task.status is status


def test_a_task_with_an_origin_needs_the_origins_provider_id() -> None:
    task = task_in(TaskStatus.pending)
    task.origin_task_id = uuid4()
    with pytest.raises(Conflict):
        task.provider_request(None)


# --- whatever the order --------------------------------------------------------------

ALLOWED_STEPS = {
    (S.pending, S.submitted), (S.pending, S.failed),
    (S.submitted, S.processing), (S.submitted, S.completed), (S.submitted, S.failed),
    (S.processing, S.completed), (S.processing, S.failed),
    (S.submitted, S.cancelled), (S.processing, S.cancelled),
}  # fmt: skip

_updates = st.builds(
    ProviderUpdate,
    provider_task_id=st.sampled_from([PROVIDER_TASK, "other"]),
    command=st.sampled_from(list(TaskCommand)),
    status=st.sampled_from(list(ProviderStatus)),
    progress=st.one_of(st.none(), st.integers(-10, 120)),
    preview_url=st.one_of(st.none(), st.sampled_from(["a", "b"])),
    image_url=st.one_of(st.none(), st.just(GRID)),
    split_urls=st.sampled_from([(), SPLITS]),
    error=st.one_of(st.none(), st.just("boom")),
)


@given(st.sampled_from(list(TaskStatus)), st.lists(_updates, max_size=12))
def test_any_sequence_of_updates_follows_the_state_machine(
    start: TaskStatus, updates: list[ProviderUpdate]
) -> None:
    task = task_in(start)
    for u in updates:
        status, progress = task.status, task.progress
        changes = apply_provider_update(task, u, NOW)
        path = [status, *(c.task.status for c in changes)]
        for a, b in itertools.pairwise(path):
            assert a == b or (a, b) in ALLOWED_STEPS
        assert task.progress >= progress, "progress never goes back"
        if status in (S.completed, S.failed, S.cancelled):
            assert changes == ()
        assert 0 <= task.progress <= 100
