"""A prompt: the text an artist renders into images, the status they set by hand, and how
its image generation stands.

The artist may edit the text and title and set the status (`new`, `approved`, `rejected`,
`archived`) at any time. Two actions depend on the state: images may not be generated from
an archived prompt, and a prompt may not be deleted while any of its generation tasks is
active (its images would lose their prompt mid-flight). Both refusals are conflicts (409).

Generation bookkeeping
----------------------
The images service reports the life of every generation task in task events. A prompt
follows the ones that matter (`TaskSignal`) to keep three counters and a derived state:

* Each task the prompt has heard of is in one `TaskPhase`: `active` (created, not ended)
  or ended as `completed`, `failed` or `cancelled`.
* `created` makes an unknown task active. `completed`, `failed` and `cancelled` end an
  unknown or active task. A task ends once: any later signal about it is ignored, and so
  is a `created` that arrives after its end (a redelivered message can overtake another).
* `active_tasks` counts the active tasks, `completed_tasks` and `failed_tasks` the tasks
  that ended so. A cancelled task stops being active and counts nowhere else. Counters
  never go below zero.
* A generation is reserved before the images service answers that it accepted it
  (`reserve`, phase `reserved`, counted as active), so the prompt cannot be deleted in the
  moment between that answer and the task's `created` event. `created` turns a reservation
  into an active task (no counter moves); the end signals end it like an active task. A
  reservation whose task was never created is let go (`release`: by the images service when
  it could not create the task, or once it is older than a TTL): it stops being active and
  counts nowhere; should its task's events arrive after all, they count as for a task not
  heard of. So does a `reserve` of the same task after its release (the images service
  trying again, e.g. the same imagine request sent again after its first attempt could not
  create the task): it is a new reservation, checked (the prompt may generate) and counted
  as the first was, not an echo of the one let go.
* `generation_state` follows from the counters alone: `generating` while any task is
  active; otherwise `generated` if any task ever completed (the prompt has images; a later
  failure shows in `failed_tasks`); otherwise `failed` if any task failed; otherwise
  `idle` (nothing started yet, or every task was cancelled).

The result depends only on which task events arrived for each task, not on their order or
on how often each arrived, so duplicates and out-of-order delivery cannot miscount.
Reservations are not events: they are requests of the images service, answered in the order
it makes them (a reservation sent again before its release is granted once).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from uuid import UUID, uuid4

from imagetron_contracts.models.common import FieldError
from imagetron_contracts.models.prompts import GenerationState, PromptStatus
from imagetron_platform.errors import Conflict, InvalidRequest

MAX_TEXT_LENGTH = 4000
MAX_TITLE_LENGTH = 200


class TaskSignal(StrEnum):
    """The task events that move a prompt's generation counters."""

    CREATED = "created"
    COMPLETED = "completed"
    FAILED = "failed"
    CANCELLED = "cancelled"
    # Not task events: the images service reserves a generation before it answers, and
    # lets it go when it could not create the task.
    RESERVE = "reserve"
    RELEASE = "release"


class TaskPhase(StrEnum):
    """Where one generation task stands, as far as its prompt knows."""

    RESERVED = "reserved"
    ACTIVE = "active"
    COMPLETED = "completed"
    FAILED = "failed"
    CANCELLED = "cancelled"
    RELEASED = "released"


#: The phases that keep a prompt from being deleted (counted in `active_tasks`).
ACTIVE_PHASES = frozenset({TaskPhase.RESERVED, TaskPhase.ACTIVE})


_PHASE_AFTER: dict[TaskSignal, TaskPhase] = {
    TaskSignal.CREATED: TaskPhase.ACTIVE,
    TaskSignal.COMPLETED: TaskPhase.COMPLETED,
    TaskSignal.FAILED: TaskPhase.FAILED,
    TaskSignal.CANCELLED: TaskPhase.CANCELLED,
    TaskSignal.RESERVE: TaskPhase.RESERVED,
    TaskSignal.RELEASE: TaskPhase.RELEASED,
}
_ENDS = frozenset({TaskSignal.COMPLETED, TaskSignal.FAILED, TaskSignal.CANCELLED})


def next_task_phase(current: TaskPhase | None, signal: TaskSignal) -> TaskPhase | None:
    """The phase a task moves to on `signal`, or None when the signal changes nothing.

    `current` is None for a task the prompt has not heard of yet."""
    if current is None or current is TaskPhase.RELEASED:
        # A released reservation is as good as unknown: to the task's own events, and to a
        # reservation, which is a new one (recorded and counted like the first).
        return None if signal is TaskSignal.RELEASE else _PHASE_AFTER[signal]
    if current is TaskPhase.RESERVED and (
        signal in _ENDS or signal in (TaskSignal.CREATED, TaskSignal.RELEASE)
    ):
        return _PHASE_AFTER[signal]
    if current is TaskPhase.ACTIVE and signal in _ENDS:
        return _PHASE_AFTER[signal]
    return None


def _clean_text(text: str, errors: list[FieldError]) -> str:
    text = text.strip()
    if not text:
        errors.append(FieldError(loc=["text"], msg="The prompt text must not be empty."))
    elif len(text) > MAX_TEXT_LENGTH:
        errors.append(
            FieldError(
                loc=["text"], msg=f"The prompt text is longer than {MAX_TEXT_LENGTH} characters."
            )
        )
    return text


def _clean_title(title: str | None, errors: list[FieldError]) -> str | None:
    """Surrounding whitespace dropped; a blank title is no title."""
    if title is None:
        return None
    title = title.strip()
    if len(title) > MAX_TITLE_LENGTH:
        errors.append(
            FieldError(
                loc=["title"], msg=f"The title is longer than {MAX_TITLE_LENGTH} characters."
            )
        )
    return title or None


def _raise_if_any(errors: list[FieldError]) -> None:
    if errors:
        raise InvalidRequest("; ".join(e.msg for e in errors), errors=errors)


def generation_state_for(active: int, completed: int, failed: int) -> GenerationState:
    if active > 0:
        return GenerationState.generating
    if completed > 0:
        return GenerationState.generated
    if failed > 0:
        return GenerationState.failed
    return GenerationState.idle


@dataclass(slots=True)
class Prompt:
    id: UUID
    owner_id: UUID
    text: str
    title: str | None
    status: PromptStatus
    generation_state: GenerationState
    active_tasks: int
    completed_tasks: int
    failed_tasks: int
    created_at: datetime
    updated_at: datetime
    #: The subject chat it was generated from; None when written by hand or the chat is gone.
    chat_id: UUID | None = None
    #: Increases with every announced change (its events carry it), from 1 when created.
    version: int = 1

    @classmethod
    def create(
        cls,
        *,
        owner_id: UUID,
        text: str,
        title: str | None,
        now: datetime,
        prompt_id: UUID | None = None,
        chat_id: UUID | None = None,
    ) -> Prompt:
        """A new prompt, status `new`, nothing generated. Surrounding whitespace is dropped;
        an empty title is no title."""
        errors: list[FieldError] = []
        text = _clean_text(text, errors)
        title = _clean_title(title, errors)
        _raise_if_any(errors)
        return cls(
            id=prompt_id or uuid4(),
            owner_id=owner_id,
            chat_id=chat_id,
            text=text,
            title=title,
            status=PromptStatus.new,
            generation_state=GenerationState.idle,
            active_tasks=0,
            completed_tasks=0,
            failed_tasks=0,
            created_at=now,
            updated_at=now,
        )

    def edit(
        self,
        now: datetime,
        *,
        text: str | None = None,
        title: str | None = None,
        clear_title: bool = False,
    ) -> bool:
        """Change the text and/or title (None: leave as is; `clear_title` removes the title).
        Same validation as `create`. False when nothing actually changed."""
        errors: list[FieldError] = []
        new_text = self.text if text is None else _clean_text(text, errors)
        if clear_title:
            new_title = None
        elif title is None:
            new_title = self.title
        else:
            new_title = _clean_title(title, errors)  # blank: no title, as on creation
        _raise_if_any(errors)
        if (new_text, new_title) == (self.text, self.title):
            return False
        self.text, self.title = new_text, new_title
        self._changed(now)
        return True

    def unlink_chat(self, now: datetime) -> None:
        """Its chat is being deleted: the prompt stays, without the link."""
        self.chat_id = None
        self._changed(now)

    def _changed(self, now: datetime) -> None:
        self.updated_at = now
        self.version += 1

    def delete(self, now: datetime) -> None:
        """It goes (its `prompt.deleted` carries the next version); refused while its tasks
        run or are being created."""
        self.ensure_can_delete()
        self._changed(now)

    def ensure_can_delete(self) -> None:
        """A prompt whose tasks are still running (or being created) may not go: their
        results need it."""
        if self.active_tasks > 0:
            raise Conflict(
                f"Prompt {self.id} has {self.active_tasks} active generation "
                f"task{'s' if self.active_tasks != 1 else ''}: delete it once they have ended."
            )

    def ensure_can_generate(self) -> None:
        """Images may be generated from any prompt that is not archived."""
        if self.status is PromptStatus.archived:
            raise Conflict(
                f"Prompt {self.id} is archived: give it another status before generating "
                "images from it."
            )

    def ensure_can_reserve(self, phase: TaskPhase | None) -> None:
        """A task granted its generation before (in any phase but released) is granted
        again whatever the prompt's status is now: a reservation sent again (redelivered,
        retried) answers as the first did. A new task, or one whose reservation was
        released (reserving it again is a new reservation), needs a prompt that can
        generate."""
        if phase is None or phase is TaskPhase.RELEASED:
            self.ensure_can_generate()

    def change_status(self, status: PromptStatus, now: datetime) -> bool:
        """Set the manual status; False when it already was `status`."""
        if status is self.status:
            return False
        self.status = status
        self._changed(now)
        return True

    def track_task(
        self, phase: TaskPhase | None, signal: TaskSignal, now: datetime
    ) -> TaskPhase | None:
        """Apply `signal` about a task that is in `phase` (None: not heard of yet).

        Returns the task's new phase, to be recorded with the prompt, or None when the
        signal changes nothing (then the prompt is unchanged too)."""
        new_phase = next_task_phase(phase, signal)
        if new_phase is None:
            return None
        if phase in ACTIVE_PHASES:
            self.active_tasks = max(0, self.active_tasks - 1)
        if new_phase in ACTIVE_PHASES:
            self.active_tasks += 1
        elif new_phase is TaskPhase.COMPLETED:
            self.completed_tasks += 1
        elif new_phase is TaskPhase.FAILED:
            self.failed_tasks += 1
        self.generation_state = generation_state_for(
            self.active_tasks, self.completed_tasks, self.failed_tasks
        )
        self._changed(now)
        return new_phase
