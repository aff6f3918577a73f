"""Generation tasks and the state machine that the provider's reports drive.

pending ──► submitted ──► processing ──► completed
   │            │   └───────────┬──────► failed
   │            └──► cancelled ◄┘
   └──► failed, cancelled

A task that has not finished can be cancelled by its owner at any time: we stop following
it whether or not its provider can stop the work, and its later reports are ignored.

Every task ends. From the moment it takes one of its provider's slots it has a deadline
(per provider and command); a task still unfinished at its deadline, or one its provider no
longer knows, is given up: it fails with a reason that says so or, when its owner opted in
(`resubmit_if_lost`), goes back to `pending` with its slot and is sent again, at most
`MAX_RESUBMISSIONS` times. Reports about a submission given up are ignored from then on.
"""

from __future__ import annotations

import copy
import logging
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from enum import StrEnum
from typing import ClassVar
from uuid import UUID, uuid4

from imagetron_contracts.models.images import (
    ImageKind,
    ProcessMode,
    TaskAction,
    TaskCommand,
    TaskStatus,
    VariationStrength,
)
from imagetron_images.domain.images import Image
from imagetron_images.domain.providers import (
    Capability,
    ProviderRequest,
    ProviderStatus,
    ProviderUpdate,
    capability_of,
)
from imagetron_platform.errors import Conflict, InvalidRequest
from imagetron_platform.request_ids import id_for

log = logging.getLogger(__name__)

TERMINAL_STATUSES = frozenset({TaskStatus.completed, TaskStatus.failed, TaskStatus.cancelled})

_ALLOWED: Mapping[TaskStatus, frozenset[TaskStatus]] = {
    # pending → failed: the provider refused the submission outright.
    TaskStatus.pending: frozenset({TaskStatus.submitted, TaskStatus.failed, TaskStatus.cancelled}),
    # submitted → completed/failed: not every provider reports progress.
    TaskStatus.submitted: frozenset(
        {TaskStatus.processing, TaskStatus.completed, TaskStatus.failed, TaskStatus.cancelled}
    ),
    # processing → cancelled: its owner, or the provider, stopped a task that had started.
    TaskStatus.processing: frozenset(
        {TaskStatus.completed, TaskStatus.failed, TaskStatus.cancelled}
    ),
    TaskStatus.completed: frozenset(),
    TaskStatus.failed: frozenset(),
    TaskStatus.cancelled: frozenset(),
}

# The commands whose result is a 2x2 grid, which follow-ups can act on.
GRID_COMMANDS = frozenset({TaskCommand.imagine, TaskCommand.reroll, TaskCommand.variation})
CANCELLABLE_STATUSES = frozenset({TaskStatus.pending, TaskStatus.submitted, TaskStatus.processing})
GRID_INDEXES = range(1, 5)
FOLLOW_UPS = (TaskCommand.upscale, TaskCommand.variation, TaskCommand.reroll)

DEFAULT_ASPECT_RATIO = "1:1"
NO_IMAGE_ERROR = "The provider reported the task completed but sent no image."
UNEXPLAINED_FAILURE = "The provider reported the task failed without saying why."
CANCELLED_AT_PROVIDER = "The task was cancelled at the provider."
#: How often a lost or overdue task is sent again when its owner opted in.
MAX_RESUBMISSIONS = 2


class TaskEventType(StrEnum):
    created = "task.created"
    submitted = "task.submitted"
    progress = "task.progress"
    completed = "task.completed"
    failed = "task.failed"
    cancelled = "task.cancelled"
    resubmitted = "task.resubmitted"


@dataclass(frozen=True, kw_only=True)
class TaskChange:
    """Something happened to a task; `task` is a snapshot taken right after."""

    type: ClassVar[TaskEventType]
    task: GenerationTask
    occurred_at: datetime


@dataclass(frozen=True, kw_only=True)
class TaskCreated(TaskChange):
    type: ClassVar[TaskEventType] = TaskEventType.created


@dataclass(frozen=True, kw_only=True)
class TaskSubmitted(TaskChange):
    type: ClassVar[TaskEventType] = TaskEventType.submitted


@dataclass(frozen=True, kw_only=True)
class TaskProgressed(TaskChange):
    type: ClassVar[TaskEventType] = TaskEventType.progress


@dataclass(frozen=True, kw_only=True)
class TaskCompleted(TaskChange):
    type: ClassVar[TaskEventType] = TaskEventType.completed
    images: tuple[Image, ...]


@dataclass(frozen=True, kw_only=True)
class TaskFailed(TaskChange):
    type: ClassVar[TaskEventType] = TaskEventType.failed


@dataclass(frozen=True, kw_only=True)
class TaskCancelled(TaskChange):
    type: ClassVar[TaskEventType] = TaskEventType.cancelled


@dataclass(frozen=True, kw_only=True)
class TaskResubmitted(TaskChange):
    """Lost or overdue at its provider, it is pending again, to be sent anew."""

    type: ClassVar[TaskEventType] = TaskEventType.resubmitted


@dataclass(frozen=True)
class Deadlines:
    """How long a task may hold one of its provider's slots, per provider and command:
    `overrides` keys are `"<provider>.<command>"` or `"<command>"`, the first that matches
    wins, else `default`."""

    default: timedelta
    overrides: Mapping[str, timedelta] = field(default_factory=dict)

    def of(self, provider: str, command: TaskCommand) -> timedelta:
        for key in (f"{provider}.{command.value}", command.value):
            if key in self.overrides:
                return self.overrides[key]
        return self.default


@dataclass(eq=False, kw_only=True)
class GenerationTask:
    """One request to a provider (imagine, reroll, variation or upscale) and its outcome."""

    owner_id: UUID
    prompt_id: UUID
    command: TaskCommand
    provider: str
    prompt_text: str
    aspect_ratio: str
    process_mode: ProcessMode
    created_at: datetime
    updated_at: datetime
    id: UUID = field(default_factory=uuid4)
    status: TaskStatus = TaskStatus.pending
    progress: int = 0
    provider_task_id: str | None = None
    origin_task_id: UUID | None = None
    origin_index: int | None = None
    variation_strength: VariationStrength | None = None
    preview_url: str | None = None
    error: str | None = None
    completed_at: datetime | None = None
    # When reconciliation last asked the provider about this task.
    reconciled_at: datetime | None = None
    # When it got one of its provider's slots and its submission job was queued; a pending
    # task without it waits for a slot (see `takes_a_slot`).
    dispatched_at: datetime | None = None
    # The prompt's title when the task was created (its images' events carry it).
    prompt_title: str | None = None
    # When its provider accepted it (the start of what reconciliation learns durations from).
    submitted_at: datetime | None = None
    # Given up if it has not finished by then (set when it takes a slot).
    deadline_at: datetime | None = None
    # Reconciliation asked the provider `polls` times since the task's last news, and asks
    # again at `poll_after`; None: once it has been quiet as long as its command usually takes.
    polls: int = 0
    poll_after: datetime | None = None
    # The owner's choice: a task lost or overdue at its provider is sent again (bounded).
    resubmit_if_lost: bool = False
    resubmissions: int = 0
    # Provider task ids of submissions given up: their reports are never applied.
    abandoned_provider_task_ids: tuple[str, ...] = ()
    # Increases with every announced change (each event carries the version it made), so
    # consumers can tell a stale event from a newer one.
    version: int = 1

    @classmethod
    def imagine(
        cls,
        *,
        owner_id: UUID,
        prompt_id: UUID,
        prompt_text: str,
        aspect_ratio: str,
        process_mode: ProcessMode,
        provider: str,
        now: datetime,
        prompt_title: str | None = None,
        resubmit_if_lost: bool = False,
        task_id: UUID | None = None,
    ) -> tuple[GenerationTask, TaskCreated]:
        """A new grid from a prompt; `task_id` (see `task_id_for`) or a new id."""
        if not prompt_text.strip():
            raise InvalidRequest("The prompt text is empty.")
        task = cls(
            id=task_id or uuid4(),
            owner_id=owner_id,
            prompt_id=prompt_id,
            command=TaskCommand.imagine,
            provider=provider,
            prompt_text=prompt_text,
            prompt_title=prompt_title,
            aspect_ratio=aspect_ratio,
            process_mode=process_mode,
            created_at=now,
            updated_at=now,
            resubmit_if_lost=resubmit_if_lost,
        )
        return task, TaskCreated(task=task.snapshot(), occurred_at=now)

    def follow_up(
        self,
        command: TaskCommand,
        *,
        index: int | None = None,
        strength: VariationStrength | None = None,
        can: frozenset[Capability],
        now: datetime,
        task_id: UUID | None = None,
    ) -> tuple[GenerationTask, TaskCreated]:
        """A reroll, variation(index) or upscale(index) of this task: a new task whose
        origin is this one, on the same provider, with `task_id` (see `task_id_for`) or a
        new id. Only a completed grid has follow-ups."""
        if command not in FOLLOW_UPS:
            raise InvalidRequest(f"{command} is not a follow-up of a task.")
        if capability_of(command) not in can:
            raise InvalidRequest(f"The provider {self.provider!r} cannot do {command}.")
        if not self.is_completed_grid:
            what = "grid" if self.command in GRID_COMMANDS else f"{self.command} (not a grid)"
            raise Conflict(
                f"Task {self.id} is a {self.status} {what}; only a completed grid can have a "
                f"{command}."
            )
        if command is TaskCommand.reroll:
            index = None
        elif index not in GRID_INDEXES:
            raise InvalidRequest(f"A {command} needs an index from 1 to 4, not {index}.")
        task = GenerationTask(
            id=task_id or uuid4(),
            owner_id=self.owner_id,
            prompt_id=self.prompt_id,
            command=command,
            provider=self.provider,
            prompt_text=self.prompt_text,
            prompt_title=self.prompt_title,
            aspect_ratio=self.aspect_ratio,
            process_mode=self.process_mode,
            created_at=now,
            updated_at=now,
            origin_task_id=self.id,
            origin_index=index,
            variation_strength=(
                (strength or VariationStrength.strong) if command is TaskCommand.variation else None
            ),
            resubmit_if_lost=self.resubmit_if_lost,
        )
        return task, TaskCreated(task=task.snapshot(), occurred_at=now)

    def actions(self, can: frozenset[Capability]) -> list[TaskAction]:
        """The follow-ups possible now, given what the task's provider can do. Cancelling
        needs no provider support: a task it cannot stop is cancelled on our side only."""
        if self.status in CANCELLABLE_STATUSES:
            return [TaskAction.cancel]
        if not self.is_completed_grid:
            return []
        found: list[TaskAction] = []
        if Capability.upscale in can:
            found += [TaskAction(f"upscale{i}") for i in GRID_INDEXES]
        if Capability.variation in can:
            found += [TaskAction(f"variation{i}") for i in GRID_INDEXES]
        if Capability.reroll in can:
            found.append(TaskAction.reroll)
        return found

    @property
    def is_completed_grid(self) -> bool:
        return self.status is TaskStatus.completed and self.command in GRID_COMMANDS

    @property
    def is_terminal(self) -> bool:
        return self.status in TERMINAL_STATUSES

    def mark_reconciled(self, now: datetime) -> None:
        self.reconciled_at = now

    @property
    def is_waiting_for_a_slot(self) -> bool:
        return self.status is TaskStatus.pending and self.dispatched_at is None

    @property
    def takes_a_slot(self) -> bool:
        """Counts against its provider's bound on tasks in flight: sent or about to be."""
        if self.status is TaskStatus.pending:
            return self.dispatched_at is not None
        return self.status in (TaskStatus.submitted, TaskStatus.processing)

    def dispatch(self, now: datetime, deadline: timedelta) -> None:
        """It got a slot: its submission job is queued now, and it must have finished
        within `deadline`."""
        if not self.is_waiting_for_a_slot:
            raise Conflict(f"Task {self.id} is not waiting for a slot.")
        self.dispatched_at = now
        self.deadline_at = now + deadline

    def is_overdue(self, now: datetime) -> bool:
        return (
            not self.is_terminal
            and self.deadline_at is not None
            and now >= self.deadline_at
            and not self.is_waiting_for_a_slot
        )

    def polled_without_news(self, now: datetime, retry_in: timedelta) -> None:
        """Reconciliation asked the provider and learned nothing new: ask again later."""
        self.reconciled_at = now
        self.polls += 1
        self.poll_after = now + retry_in

    def expire(self, now: datetime, deadline: timedelta) -> TaskFailed | TaskResubmitted | None:
        """It is past its deadline: give it up, saying so (see `give_up`)."""
        if self.deadline_at is None or not self.is_overdue(now):
            return None
        allowed = _human(self.deadline_at - (self.dispatched_at or self.created_at))
        return self.give_up(
            f"Not finished within {allowed} of getting a slot (the deadline of "
            f"{self.provider} {self.command} tasks).",
            now,
            deadline,
        )

    def give_up(
        self, reason: str, now: datetime, deadline: timedelta
    ) -> TaskFailed | TaskResubmitted | None:
        """The provider lost the task, or it is past its deadline: fail it with `reason`,
        or, when its owner opted in and resubmissions are left, make it pending again (it
        keeps its slot, with a new `deadline`) to be sent anew. None for a task that has
        finished meanwhile."""
        if self.is_terminal:
            return None
        if not self.resubmit_if_lost or self.resubmissions >= MAX_RESUBMISSIONS:
            if self.resubmit_if_lost:
                reason += f" It was sent {self.resubmissions + 1} times; giving up."
            return self._failed(reason, now)
        if self.provider_task_id is not None:
            self.abandoned_provider_task_ids += (self.provider_task_id,)
        self.status = TaskStatus.pending
        self.resubmissions += 1
        self.provider_task_id = None
        self.submitted_at = None
        self.progress = 0
        self.preview_url = None
        self.error = reason
        self.dispatched_at = now
        self.deadline_at = now + deadline
        self._touch(now)
        return TaskResubmitted(task=self.snapshot(), occurred_at=now)

    def snapshot(self) -> GenerationTask:
        return copy.copy(self)

    def provider_request(self, origin: GenerationTask | None = None) -> ProviderRequest:
        if self.origin_task_id is not None and (
            origin is None or origin.id != self.origin_task_id or origin.provider_task_id is None
        ):
            raise Conflict(f"Task {self.id} needs its origin task's provider id to be submitted.")
        return ProviderRequest(
            task_id=self.id,
            owner_id=self.owner_id,
            command=self.command,
            prompt_text=self.prompt_text,
            aspect_ratio=self.aspect_ratio,
            process_mode=self.process_mode,
            origin_provider_task_id=origin.provider_task_id if origin is not None else None,
            origin_index=self.origin_index,
            variation_strength=self.variation_strength,
        )

    def accept_submission(self, provider_task_id: str, now: datetime) -> TaskSubmitted | None:
        """The provider took the task. None when that is already known, e.g. because its
        first callback overtook our record of the submission."""
        if self.status is not TaskStatus.pending:
            if self.provider_task_id != provider_task_id:
                log.warning(
                    "task %s is %s; the provider's task %s is not ours to track",
                    self.id,
                    self.status,
                    provider_task_id,
                )
            return None
        return self._submitted(provider_task_id, now)

    def reject_submission(self, error: str, now: datetime) -> TaskFailed | None:
        """The provider refused the task (or stayed unreachable until we gave up)."""
        if self.status is not TaskStatus.pending:
            return None
        return self._failed(error, now)

    def cancel(self, now: datetime) -> TaskCancelled:
        if self.status not in CANCELLABLE_STATUSES:
            raise Conflict(
                f"Task {self.id} is {self.status}; only a task that has not finished can be "
                "cancelled."
            )
        self._move_to(TaskStatus.cancelled, now)
        return TaskCancelled(task=self.snapshot(), occurred_at=now)

    def _cancelled_by_provider(self, reason: str | None, now: datetime) -> TaskCancelled:
        """The provider says the task was stopped there: it ends cancelled, whatever our
        side knew, because nothing more will come of it."""
        self._move_to(TaskStatus.cancelled, now)
        self.error = reason or CANCELLED_AT_PROVIDER
        return TaskCancelled(task=self.snapshot(), occurred_at=now)

    def _move_to(self, status: TaskStatus, now: datetime) -> None:
        if status not in _ALLOWED[self.status]:
            raise Conflict(f"Task {self.id} is {self.status}; it cannot become {status}.")
        self.status = status
        self._touch(now)

    def _touch(self, now: datetime) -> None:
        """News about the task (each change is announced with its new version);
        reconciliation starts counting its quiet time again."""
        self.version += 1
        self.updated_at = now
        self.polls = 0
        self.poll_after = None

    def _submitted(self, provider_task_id: str, now: datetime) -> TaskSubmitted:
        self._move_to(TaskStatus.submitted, now)
        self.provider_task_id = provider_task_id
        self.submitted_at = now
        return TaskSubmitted(task=self.snapshot(), occurred_at=now)

    def _progressed(self, update: ProviderUpdate, now: datetime) -> TaskProgressed | None:
        progress = _clamp_percent(update.progress if update.progress is not None else 0)
        if self.status is TaskStatus.processing:
            new_preview = update.preview_url is not None and update.preview_url != self.preview_url
            if progress < self.progress or (progress == self.progress and not new_preview):
                return None  # late, duplicated or out of order: progress never goes back
            self._touch(now)
        else:
            self._move_to(TaskStatus.processing, now)
        self.progress = max(self.progress, progress)
        self.preview_url = update.preview_url or self.preview_url
        return TaskProgressed(task=self.snapshot(), occurred_at=now)

    def _completed(self, update: ProviderUpdate, now: datetime) -> TaskCompleted | TaskFailed:
        images = self._result_images(update, now)
        if not images:
            return self._failed(NO_IMAGE_ERROR, now)
        self._move_to(TaskStatus.completed, now)
        self.progress = 100
        self.error = None
        self.completed_at = now
        return TaskCompleted(task=self.snapshot(), occurred_at=now, images=images)

    def _failed(self, error: str, now: datetime) -> TaskFailed:
        self._move_to(TaskStatus.failed, now)
        self.error = error
        return TaskFailed(task=self.snapshot(), occurred_at=now)

    def fresh_source_url(self, kind: ImageKind, index: int, update: ProviderUpdate) -> str | None:
        """Where the provider's current report on this task (`update`, fetched anew) has
        the image `kind`/`index` now; None when it does not have it (any more)."""
        if (
            update.status is not ProviderStatus.completed
            or update.provider_task_id != self.provider_task_id
        ):
            return None
        for image in self._result_images(update, self.updated_at):
            if (image.kind, image.index) == (kind, index):
                return image.source_url
        return None

    def _result_images(self, update: ProviderUpdate, now: datetime) -> tuple[Image, ...]:
        def image(kind: ImageKind, index: int, url: str) -> Image:
            return Image(
                owner_id=self.owner_id, task_id=self.id, prompt_id=self.prompt_id, kind=kind,
                index=index, source_url=url, created_at=now, updated_at=now,
            )  # fmt: skip

        if self.command is TaskCommand.upscale:
            index = self.origin_index or 1
            return (image(ImageKind.upscale, index, update.image_url),) if update.image_url else ()
        grid = (image(ImageKind.grid, 0, update.image_url),) if update.image_url else ()
        versions = tuple(
            image(ImageKind.version, index, url)
            for index, url in enumerate(update.split_urls[:4], start=1)
        )
        return grid + versions


#: The namespace of task ids named by a request (`task_id_for`).
REQUESTED_TASKS = UUID("6f1c2b9e-3d4a-5e8f-9a0b-1c2d3e4f5a6b")


def task_id_for(owner_id: UUID, request_id: str | None) -> UUID:
    """The id of the task a request creates: fixed by its `request_id` (the same request
    sent again names the same task, so it cannot create a second one), new without one."""
    return id_for(REQUESTED_TASKS, owner_id, request_id)


def apply_provider_update(
    task: GenerationTask, update: ProviderUpdate, now: datetime
) -> tuple[TaskChange, ...]:
    """Apply a provider's report if it is news for this task; return what happened.

    An update applies only to the task it names (provider task id and command) and only in
    a status it can follow; progress never goes back and a finished task never changes.
    Anything else (a duplicate, a late or out-of-order report, another task's) changes
    nothing and returns no change.
    """
    ignored = _why_not_applicable(task, update)
    if ignored is not None:
        log.info(
            "ignored %s update for task %s (%s): %s",
            update.status,
            task.id,
            task.status,
            ignored,
        )
        return ()
    changes: list[TaskChange] = []
    if task.status is TaskStatus.pending:
        # Its callback can overtake our record of the submission. The task id in a callback
        # URL is covered by a token only we can mint, so the report is genuinely about this
        # task: adopt the provider's task id rather than drop the report.
        changes.append(task._submitted(update.provider_task_id, now))
    match update.status:
        case ProviderStatus.queued:
            pass
        case ProviderStatus.running:
            if (progressed := task._progressed(update, now)) is not None:
                changes.append(progressed)
        case ProviderStatus.completed:
            changes.append(task._completed(update, now))
        case ProviderStatus.failed:
            changes.append(task._failed(update.error or UNEXPLAINED_FAILURE, now))
        case ProviderStatus.cancelled:
            changes.append(task._cancelled_by_provider(update.error, now))
    if not changes:
        log.info(
            "ignored %s update for task %s (%s): nothing new", update.status, task.id, task.status
        )
    return tuple(changes)


def _why_not_applicable(task: GenerationTask, update: ProviderUpdate) -> str | None:
    if task.is_terminal:
        return "the task is finished"
    if update.provider_task_id in task.abandoned_provider_task_ids:
        return f"provider task {update.provider_task_id} was given up and sent again"
    if update.command is not task.command:
        return f"it is about a {update.command}, the task is a {task.command}"
    if task.provider_task_id is not None and update.provider_task_id != task.provider_task_id:
        return f"it is about provider task {update.provider_task_id}, not {task.provider_task_id}"
    if task.status is TaskStatus.processing and update.status is ProviderStatus.queued:
        return "the task is already processing"
    return None


def _human(duration: timedelta) -> str:
    seconds = round(duration.total_seconds())
    if seconds >= 3600 and seconds % 3600 == 0:
        return f"{seconds // 3600} h"
    if seconds >= 60 and seconds % 60 == 0:
        return f"{seconds // 60} min"
    return f"{seconds} s"


def _clamp_percent(value: int) -> int:
    return min(max(value, 0), 100)
