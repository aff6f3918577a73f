"""One handler per use case of prompts (the language-model ones are in `workshop`, chats in
`chats`). Each opens the unit of work it is given, commits at most once, and raises
`imagetron_platform.errors` for the edges to render."""

from __future__ import annotations

import contextlib
import logging
from datetime import timedelta
from enum import StrEnum
from uuid import UUID

from imagetron_contracts.models import prompts as contract
from imagetron_contracts.models.images import TaskEvent, TaskEventType
from imagetron_contracts.models.prompts import PromptEventType
from imagetron_platform.clock import Clock
from imagetron_platform.errors import Gone, NotFound
from imagetron_platform.pagination import Cursors, PageKey, page_size
from imagetron_platform.pruning import PRUNE_BATCH, remove_in_batches
from imagetron_prompts.app.messages import emit_prompt_event
from imagetron_prompts.app.ports import PromptFilter, UnitOfWork
from imagetron_prompts.app.requested import prompt_id_for
from imagetron_prompts.app.views import prompt_view
from imagetron_prompts.domain.prompt import Prompt, TaskSignal

log = logging.getLogger(__name__)

#: The inbox name under which task events are claimed (also the JetStream durable name).
TASK_EVENTS_CONSUMER = "prompts-task-events"
PROMPT_CURSORS = Cursors(PageKey)

_SIGNALS: dict[TaskEventType, TaskSignal] = {
    TaskEventType.task_created: TaskSignal.CREATED,
    TaskEventType.task_completed: TaskSignal.COMPLETED,
    TaskEventType.task_failed: TaskSignal.FAILED,
    TaskEventType.task_cancelled: TaskSignal.CANCELLED,
}


class TaskEventOutcome(StrEnum):
    APPLIED = "applied"
    """The prompt's counters changed; `prompt.updated` was emitted."""
    UNCHANGED = "unchanged"
    """The task already was where the event puts it (or had ended): nothing to do."""
    DUPLICATE = "duplicate"
    """This event id was applied before (inbox)."""
    IGNORED = "ignored"
    """An event type that does not move the counters (submitted, progress)."""
    STALE = "stale"
    """An event older than one of the same task already applied (its version is lower)."""
    UNKNOWN_PROMPT = "unknown_prompt"
    """No such prompt for the event's owner, e.g. deleted meanwhile."""


async def owned_prompt(
    uow: UnitOfWork, owner_id: UUID, prompt_id: UUID, *, for_update: bool = False
) -> Prompt:
    prompt = await uow.prompts.get(owner_id, prompt_id, for_update=for_update)
    if prompt is None:
        # The same answer whether it does not exist or belongs to someone else.
        raise NotFound(f"Prompt {prompt_id} does not exist.")
    return prompt


async def create_prompt(
    cmd: contract.CreatePromptCommand, uow: UnitOfWork, clock: Clock
) -> contract.Prompt:
    """A new prompt and its `prompt.created`; sent again with its `request_id`, the prompt
    the first attempt created, as it is now, announced once, or 410 if it was deleted since
    (and not forgotten yet: `forget_deleted_prompts`), rather than created again.

    The deleted prompt's id is looked up after the insert, in its transaction: a delete
    that commits while the insert waits for its row has already remembered the id."""
    now = clock()
    prompt = Prompt.create(
        owner_id=cmd.owner_id,
        text=cmd.text,
        title=cmd.title,
        now=now,
        prompt_id=prompt_id_for(cmd.owner_id, cmd.request_id),
    )
    async with uow:
        if not await uow.prompts.add(prompt):
            # The insert found the first attempt's row without locking it: a delete may
            # have committed since.
            before = await uow.prompts.get(cmd.owner_id, prompt.id)
            if before is None:
                raise _created_and_deleted(prompt.id)
            return prompt_view(before)
        if cmd.request_id and await uow.prompts.was_deleted(cmd.owner_id, prompt.id):
            # Leaving the unit of work uncommitted takes the insert back.
            raise _created_and_deleted(prompt.id)
        await emit_prompt_event(uow, prompt, PromptEventType.prompt_created, now)
        await uow.commit()
    return prompt_view(prompt)


def _created_and_deleted(prompt_id: UUID) -> Gone:
    return Gone(
        f"Prompt {prompt_id}, which this request created, was deleted since; it is not "
        "created again (send a new Idempotency-Key for a new prompt)."
    )


async def get_prompt(query: contract.PromptQuery, uow: UnitOfWork) -> contract.Prompt:
    async with uow:
        prompt = await owned_prompt(uow, query.owner_id, query.prompt_id)
    return prompt_view(prompt)


async def list_prompts(query: contract.ListPromptsQuery, uow: UnitOfWork) -> contract.PromptPage:
    limit = page_size(query.limit)
    after = PROMPT_CURSORS.after(query.cursor)
    where = PromptFilter(
        status=query.status, chat_id=query.chat_id, text=(query.q or "").strip() or None
    )
    async with uow:
        rows = await uow.prompts.list_page(
            query.owner_id, limit=limit + 1, after=after, where=where
        )
    page = PROMPT_CURSORS.page(rows, limit, lambda p: PageKey(p.created_at, p.id))
    return contract.PromptPage(
        items=[prompt_view(p) for p in page.items], next_cursor=page.next_cursor
    )


async def update_prompt(
    cmd: contract.UpdatePromptCommand, uow: UnitOfWork, clock: Clock
) -> contract.Prompt:
    """Edit text and/or title; `prompt.updated` only if something changed."""
    async with uow:
        prompt = await owned_prompt(uow, cmd.owner_id, cmd.prompt_id, for_update=True)
        now = clock()
        if prompt.edit(now, text=cmd.text, title=cmd.title, clear_title=bool(cmd.clear_title)):
            await uow.prompts.save(prompt)
            await emit_prompt_event(uow, prompt, PromptEventType.prompt_updated, now)
            await uow.commit()
    return prompt_view(prompt)


async def set_status(
    cmd: contract.SetPromptStatusCommand, uow: UnitOfWork, clock: Clock
) -> contract.Prompt:
    """Set the manual status; `prompt.updated` only if it changed."""
    async with uow:
        prompt = await owned_prompt(uow, cmd.owner_id, cmd.prompt_id, for_update=True)
        now = clock()
        if prompt.change_status(cmd.status, now):
            await uow.prompts.save(prompt)
            await emit_prompt_event(uow, prompt, PromptEventType.prompt_updated, now)
            await uow.commit()
    return prompt_view(prompt)


async def delete_prompt(
    query: contract.PromptQuery, uow: UnitOfWork, clock: Clock
) -> contract.Prompt:
    """Delete a prompt with no active generation task (409 otherwise); emits
    `prompt.deleted` with its last state, which is also the answer.

    The row lock serialises this with task events: a `task.created` applied first makes
    this a 409; one applied after finds no prompt and is a no-op."""
    async with uow:
        prompt = await owned_prompt(uow, query.owner_id, query.prompt_id, for_update=True)
        now = clock()
        prompt.delete(now)
        await uow.prompts.delete(prompt)
        await emit_prompt_event(uow, prompt, PromptEventType.prompt_deleted, now)
        await uow.commit()
    return prompt_view(prompt)


async def prepare_generation(query: contract.PromptQuery, uow: UnitOfWork) -> contract.Prompt:
    """The prompt, if images may be generated from it now: 404 unknown, 409 archived.

    Nothing changes here; the counters move when the images service reports the task."""
    async with uow:
        prompt = await owned_prompt(uow, query.owner_id, query.prompt_id)
    prompt.ensure_can_generate()
    return prompt_view(prompt)


async def reserve_generation(
    cmd: contract.GenerationReservation, uow: UnitOfWork, clock: Clock
) -> contract.Prompt:
    """Hold a generation on the prompt before its task exists (404 unknown, 409 archived):
    the images service asks before it answers that it accepted a task, so the prompt
    cannot be deleted between that answer and the task's `created` event. Idempotent: a
    task that holds it is granted again, even if the prompt was archived since. A task
    whose reservation was released is reserved anew: checked, recorded and announced as a
    first reservation is."""
    return await _track_reservation(cmd, TaskSignal.RESERVE, uow, clock)


async def release_generation(
    cmd: contract.GenerationReservation, uow: UnitOfWork, clock: Clock
) -> contract.Prompt:
    """Let go of a reservation whose task could not be created (nothing if the task's
    events have arrived meanwhile)."""
    return await _track_reservation(cmd, TaskSignal.RELEASE, uow, clock)


async def _track_reservation(
    cmd: contract.GenerationReservation, signal: TaskSignal, uow: UnitOfWork, clock: Clock
) -> contract.Prompt:
    async with uow:
        prompt = await owned_prompt(uow, cmd.owner_id, cmd.prompt_id, for_update=True)
        phase = await uow.prompts.task_phase(prompt.id, cmd.task_id)
        if signal is TaskSignal.RESERVE:
            prompt.ensure_can_reserve(phase)
        now = clock()
        new_phase = prompt.track_task(phase, signal, now)
        if new_phase is not None:
            await uow.prompts.save_task_phase(prompt.id, cmd.task_id, new_phase, now)
            await uow.prompts.save(prompt)
            await emit_prompt_event(uow, prompt, PromptEventType.prompt_updated, now)
            await uow.commit()
    return prompt_view(prompt)


async def release_expired_reservations(
    uow: UnitOfWork, clock: Clock, *, older_than: timedelta, limit: int = 100
) -> int:
    """Let go of reservations whose task never showed up (the images service died between
    reserving and creating it). Returns how many."""
    now = clock()
    async with uow:
        expired = await uow.prompts.reservations_before(now - older_than, limit)
    for owner_id, prompt_id, task_id in expired:
        log.warning(
            "releasing a generation reserved more than %s ago without its task",
            older_than,
            extra={"prompt_id": str(prompt_id), "task_id": str(task_id)},
        )
        cmd = contract.GenerationReservation(
            owner_id=owner_id, prompt_id=prompt_id, task_id=task_id
        )
        with contextlib.suppress(NotFound):  # deleted meanwhile
            await release_generation(cmd, uow, clock)
    return len(expired)


async def forget_deleted_prompts(
    uow: UnitOfWork, clock: Clock, *, older_than: timedelta, limit: int = PRUNE_BATCH
) -> int:
    """Forget the prompts deleted more than `older_than` ago, a batch per transaction (a
    request that created one is no longer expected to be sent again); how many."""
    before = clock() - older_than
    return await remove_in_batches(
        lambda: uow, lambda unit, batch: unit.prompts.forget_deleted(before, batch), limit
    )


async def apply_task_event(event: TaskEvent, uow: UnitOfWork, clock: Clock) -> TaskEventOutcome:
    """Move the prompt's generation counters for one task event, exactly once per event id.

    The inbox claim, the task's phase, the prompt and its `prompt.updated` event are written
    in one transaction; the prompt row is locked so concurrent events serialise on it."""
    signal = _SIGNALS.get(event.type)
    if signal is None:
        return TaskEventOutcome.IGNORED
    task = event.task
    async with uow:
        if not await uow.claim(TASK_EVENTS_CONSUMER, str(event.id)):
            return TaskEventOutcome.DUPLICATE
        prompt = await uow.prompts.get(event.owner_id, task.prompt_id, for_update=True)
        if prompt is None:
            log.info(
                "task event for an unknown prompt ignored",
                extra={"event_id": str(event.id), "prompt_id": str(task.prompt_id)},
            )
            return TaskEventOutcome.UNKNOWN_PROMPT
        if event.version and event.version <= await uow.prompts.task_version(prompt.id, task.id):
            await uow.commit()  # keep the claim: a newer event of this task was applied
            return TaskEventOutcome.STALE
        now = clock()
        phase = await uow.prompts.task_phase(prompt.id, task.id)
        new_phase = prompt.track_task(phase, signal, now)
        if new_phase is None:
            await uow.commit()  # keep the claim: the event was seen and needs nothing more
            return TaskEventOutcome.UNCHANGED
        await uow.prompts.save_task_phase(prompt.id, task.id, new_phase, now, event.version)
        await uow.prompts.save(prompt)
        await emit_prompt_event(uow, prompt, PromptEventType.prompt_updated, now)
        await uow.commit()
    return TaskEventOutcome.APPLIED
