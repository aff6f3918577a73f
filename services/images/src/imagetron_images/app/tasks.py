"""Generation tasks: create (imagine and the follow-ups), read, list, cancel, and submit to
the provider."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Mapping
from dataclasses import dataclass
from uuid import UUID

from imagetron_contracts.models.images import (
    ImagineCommand,
    ListTasksQuery,
    ProcessMode,
    RequestedTaskQuery,
    RerollCommand,
    SubmitTaskJob,
    Task,
    TaskCommand,
    TaskPage,
    TaskQuery,
    TaskStatus,
    UpscaleCommand,
    VariationCommand,
    VariationStrength,
)
from imagetron_images.app.callbacks import record_provider_update
from imagetron_images.app.dispatch import Slots, dispatch_waiting
from imagetron_images.app.messages import emit_task_change, enqueue_submission
from imagetron_images.app.ports import (
    ImageProvider,
    PermanentError,
    PromptLedger,
    ProviderBusy,
    TransientError,
    UnitOfWork,
)
from imagetron_images.app.views import capabilities, task_view
from imagetron_images.domain import (
    Capability,
    GenerationTask,
    ProviderRequest,
    ProviderUpdate,
    TaskChange,
    TaskCreated,
    task_id_for,
)
from imagetron_images.domain.tasks import DEFAULT_ASPECT_RATIO
from imagetron_platform.clock import utcnow
from imagetron_platform.errors import Conflict, NotFound, ProblemError
from imagetron_platform.jobs import Delivery, RetryLater
from imagetron_platform.pagination import Cursors, PageKey, page_size

log = logging.getLogger(__name__)

SUBMIT_CONSUMER = "images-submit"
TASK_CURSORS = Cursors(PageKey)
#: How long we wait for a provider to stop a task we cancelled (it is cancelled anyway).
PROVIDER_CANCEL_SECONDS = 3.0


async def imagine(
    cmd: ImagineCommand,
    uow: UnitOfWork,
    providers: Mapping[str, ImageProvider],
    *,
    default_provider: str,
    slots: Slots,
    prompt_ledger: PromptLedger,
) -> Task:
    """A new grid from a prompt, on the default provider (or, sent again with its
    `request_id`, the task it created the first time)."""
    provider = default_provider
    task_id = task_id_for(cmd.owner_id, cmd.request_id)
    if cmd.request_id and (before := await _created_before(cmd.owner_id, task_id, uow, providers)):
        return before
    task, created = GenerationTask.imagine(
        task_id=task_id,
        owner_id=cmd.owner_id,
        prompt_id=cmd.prompt_id,
        prompt_text=cmd.prompt_text,
        prompt_title=cmd.prompt_title,
        aspect_ratio=cmd.aspect_ratio or DEFAULT_ASPECT_RATIO,
        process_mode=cmd.process_mode or ProcessMode.fast,
        provider=provider,
        now=utcnow(),
        resubmit_if_lost=bool(cmd.resubmit_if_lost),
    )
    return await _create(
        task, created, uow, providers, capabilities(providers, provider), slots, prompt_ledger
    )


async def reroll(
    cmd: RerollCommand,
    uow: UnitOfWork,
    providers: Mapping[str, ImageProvider],
    *,
    slots: Slots,
    prompt_ledger: PromptLedger,
) -> Task:
    return await _follow_up(
        cmd.owner_id, cmd.task_id, TaskCommand.reroll, uow, providers,
        request_id=cmd.request_id, slots=slots, prompt_ledger=prompt_ledger,
    )  # fmt: skip


async def variation(
    cmd: VariationCommand,
    uow: UnitOfWork,
    providers: Mapping[str, ImageProvider],
    *,
    slots: Slots,
    prompt_ledger: PromptLedger,
) -> Task:
    return await _follow_up(
        cmd.owner_id, cmd.task_id, TaskCommand.variation, uow, providers,
        index=cmd.index, strength=cmd.strength, request_id=cmd.request_id, slots=slots,
        prompt_ledger=prompt_ledger,
    )  # fmt: skip


async def upscale(
    cmd: UpscaleCommand,
    uow: UnitOfWork,
    providers: Mapping[str, ImageProvider],
    *,
    slots: Slots,
    prompt_ledger: PromptLedger,
) -> Task:
    return await _follow_up(
        cmd.owner_id, cmd.task_id, TaskCommand.upscale, uow, providers,
        index=cmd.index, request_id=cmd.request_id, slots=slots, prompt_ledger=prompt_ledger,
    )  # fmt: skip


async def cancel_task(
    query: TaskQuery, uow: UnitOfWork, providers: Mapping[str, ImageProvider]
) -> Task:
    """Cancel a task that has not finished (409 once it has). It is cancelled on our side
    first, whatever the provider says: its slot is free at once and its later reports are
    ignored. Then a provider that can stop tasks is asked to stop this one (best effort: an
    unreachable provider, or one that has already started the work, does not undo the
    cancellation)."""
    async with uow:
        task = await uow.tasks.get_for_update(query.task_id)
        if task is None or task.owner_id != query.owner_id:
            raise NotFound(f"There is no task {query.task_id}.")
        can = capabilities(providers, task.provider)
        change = task.cancel(utcnow())
        await uow.tasks.update(task)
        await emit_task_change(uow, change, can)
        await uow.commit()
    if task.provider_task_id is not None:
        # A task still being submitted has no provider id yet: its submission job stops
        # the provider's task when it learns of it.
        await stop_at_provider(providers, task, task.provider_task_id)
    return task_view(task, can)


async def get_task(
    query: TaskQuery, uow: UnitOfWork, providers: Mapping[str, ImageProvider]
) -> Task:
    async with uow:
        task = await uow.tasks.get(query.owner_id, query.task_id)
        if task is None:
            raise NotFound(f"There is no task {query.task_id}.")
        position = await _queue_position(uow, task)
    return task_view(task, capabilities(providers, task.provider), position)


async def requested_task(
    query: RequestedTaskQuery, uow: UnitOfWork, providers: Mapping[str, ImageProvider]
) -> Task:
    """The task the request `query.request_id` created, as it is now (404 if none): what a
    retried imagine answers when its prompt no longer may be rendered."""
    task_id = task_id_for(query.owner_id, query.request_id)
    if (task := await _created_before(query.owner_id, task_id, uow, providers)) is None:
        raise NotFound(f"The request {query.request_id!r} created no task.")
    return task


async def list_tasks(
    query: ListTasksQuery, uow: UnitOfWork, providers: Mapping[str, ImageProvider]
) -> TaskPage:
    limit = page_size(query.limit)
    async with uow:
        rows = await uow.tasks.list(
            query.owner_id, prompt_id=query.prompt_id, status=query.status,
            after=TASK_CURSORS.after(query.cursor), limit=limit + 1,
        )  # fmt: skip
        page = TASK_CURSORS.page(rows, limit, lambda t: PageKey(t.created_at, t.id))
        positions = [await _queue_position(uow, t) for t in page.items]
    return TaskPage(
        items=[
            task_view(t, capabilities(providers, t.provider), position)
            for t, position in zip(page.items, positions, strict=True)
        ],
        next_cursor=page.next_cursor,
    )


async def _follow_up(
    owner_id: UUID,
    task_id: UUID,
    command: TaskCommand,
    uow: UnitOfWork,
    providers: Mapping[str, ImageProvider],
    *,
    index: int | None = None,
    strength: VariationStrength | None = None,
    request_id: str | None = None,
    slots: Slots,
    prompt_ledger: PromptLedger,
) -> Task:
    new_id = task_id_for(owner_id, request_id)
    if request_id and (before := await _created_before(owner_id, new_id, uow, providers)):
        return before
    origin = await _owned_task(owner_id, task_id, uow)
    can = capabilities(providers, origin.provider)
    task, created = origin.follow_up(
        command, index=index, strength=strength, can=can, now=utcnow(), task_id=new_id
    )
    return await _create(task, created, uow, providers, can, slots, prompt_ledger)


async def _created_before(
    owner_id: UUID, task_id: UUID, uow: UnitOfWork, providers: Mapping[str, ImageProvider]
) -> Task | None:
    """The task a request sent again (same `request_id`) created the first time, as it is
    now; None when it is the first time."""
    try:
        return await get_task(TaskQuery(owner_id=owner_id, task_id=task_id), uow, providers)
    except NotFound:
        return None


async def _create(
    task: GenerationTask,
    created: TaskCreated,
    uow: UnitOfWork,
    providers: Mapping[str, ImageProvider],
    can: frozenset[Capability],
    slots: Slots,
    prompt_ledger: PromptLedger,
) -> Task:
    """Reserve the generation on its prompt (so the prompt cannot be deleted before it
    hears of the task), then record the new task and its `task.created` in one
    transaction, with its submission job when its provider has a free slot; otherwise it
    waits its turn (`queue_position`). If the task cannot be recorded, the reservation is
    let go (the same request sent again reserves anew, and the prompts service records
    that as a new reservation). If its id is taken (the same request, sent again while
    its first attempt was being answered), that task is the answer: nothing is recorded,
    and the reservation, the same task's, stays.

    A reservation that was not answered (no answer in time, a broken answer, the request
    cancelled while waiting) may have been recorded all the same: it is let go too, or the
    prompt could not be deleted until the prompts service's sweep (15 minutes). A refusal
    (the prompt unknown or archived) holds nothing."""
    try:
        await prompt_ledger.reserve(task.owner_id, task.prompt_id, task.id)
    except BaseException as exc:
        if not (isinstance(exc, ProblemError) and exc.status < 500):
            await _let_go(prompt_ledger, task)
        raise
    try:
        async with uow:
            if await uow.tasks.add(task):
                await emit_task_change(uow, created, can)
                await dispatch_waiting(uow, task.provider, slots)
                stored = await uow.tasks.get(task.owner_id, task.id)
                if stored is None:  # cannot happen: it was added in this transaction
                    raise NotFound(f"There is no task {task.id}.")
                position = await _queue_position(uow, stored)
                await uow.commit()
                return task_view(stored, can, position)
    except BaseException:
        await _let_go(prompt_ledger, task)
        raise
    before = await _created_before(task.owner_id, task.id, uow, providers)
    if before is None:  # cannot happen: tasks are never deleted
        raise NotFound(f"There is no task {task.id}.")
    return before


async def _let_go(prompt_ledger: PromptLedger, task: GenerationTask) -> None:
    """Release the task's reservation if it can; if not, the prompts service's sweep will."""
    with contextlib.suppress(Exception):
        await prompt_ledger.release(task.owner_id, task.prompt_id, task.id)


async def _queue_position(uow: UnitOfWork, task: GenerationTask) -> int | None:
    return await uow.tasks.queue_position(task) if task.is_waiting_for_a_slot else None


async def _owned_task(owner_id: UUID, task_id: UUID, uow: UnitOfWork) -> GenerationTask:
    async with uow:
        task = await uow.tasks.get(owner_id, task_id)
    if task is None:
        raise NotFound(f"There is no task {task_id}.")
    return task


async def submit_task(
    job: SubmitTaskJob,
    delivery: Delivery,
    uow: UnitOfWork,
    providers: Mapping[str, ImageProvider],
) -> None:
    """Hand a pending task to its provider and record the provider's task id.

    The provider call happens outside any transaction (no row lock held across the
    network). A transient failure is retried by redelivery until the last delivery, which
    fails the task like a refusal does, so no task waits for ever. A provider at capacity
    (429, queue full) is different: it works, later; the task stays pending and a new job
    starts another series of attempts (the task can be cancelled meanwhile).
    A synchronous provider (Capability.synchronous) has finished when `submit` returns:
    its report (`fetch`) is applied with the acceptance, in the same transaction.
    """
    async with uow:
        task = await uow.tasks.get(job.owner_id, job.task_id)
        if task is None:
            log.warning("submit job for unknown task %s; dropped", job.task_id)
            return
        if task.status is not TaskStatus.pending:
            log.info("task %s is already %s; nothing to submit", task.id, task.status)
            return
        origin = (
            await uow.tasks.get(task.owner_id, task.origin_task_id)
            if task.origin_task_id is not None
            else None
        )
        try:
            request: ProviderRequest | str = task.provider_request(origin)
        except Conflict as exc:
            request = exc.detail  # it cannot be submitted at all: fail it below

    outcome = (
        await _submit(providers, task.provider, request, delivery)
        if isinstance(request, ProviderRequest)
        else _Outcome(error=request)
    )

    async with uow:
        if not await uow.claim(SUBMIT_CONSUMER, delivery.message_id):
            log.info("submit job %s was applied before", delivery.message_id)
            return
        task = await uow.tasks.get_for_update(job.task_id)
        if task is None:
            return
        change: TaskChange | None = None
        can = capabilities(providers, task.provider)
        if outcome.provider_task_id is not None:
            change = task.accept_submission(outcome.provider_task_id, utcnow())
            if change is not None and outcome.result is not None:
                # A synchronous provider is done already: its result applies at once,
                # through the same rules as a callback's.
                await uow.tasks.update(task)
                await emit_task_change(uow, change, can)
                change = None
                await record_provider_update(uow, task, outcome.result, can)
        elif outcome.busy:
            if task.status is TaskStatus.pending:
                # At capacity is not a refusal: a new job starts a new series of attempts.
                log.warning("task %s: %s is still busy; queued again", task.id, task.provider)
                await enqueue_submission(uow, task)
        else:
            log.warning("task %s failed at submission: %s", task.id, outcome.error)
            change = task.reject_submission(
                outcome.error or "The provider refused the task.", utcnow()
            )
        if change is not None:
            await uow.tasks.update(task)
            await emit_task_change(uow, change, can)
        await uow.commit()
    if outcome.provider_task_id is not None and task.provider_task_id != outcome.provider_task_id:
        # Cancelled, given up or sent twice while the provider was taking it: the provider's
        # task is nobody's, so it is stopped (its reports would be ignored anyway).
        await stop_at_provider(providers, task, outcome.provider_task_id)


async def stop_at_provider(
    providers: Mapping[str, ImageProvider], task: GenerationTask, provider_task_id: str
) -> None:
    """We no longer follow the provider's task `provider_task_id` of `task` (cancelled,
    given up, or a duplicate submission): stop it too, if the provider can. Best effort:
    its reports are ignored either way."""
    provider = providers.get(task.provider)
    if provider is None or Capability.cancel not in provider.capabilities:
        return
    try:
        # Within the caller's own deadline (a cancel request answers in seconds).
        async with asyncio.timeout(PROVIDER_CANCEL_SECONDS):
            await provider.cancel(provider_task_id)
    except (TransientError, PermanentError, TimeoutError) as exc:
        log.warning(
            "task %s (%s): %s could not stop its task %s: %s",
            task.id, task.status, task.provider, provider_task_id, exc,
        )  # fmt: skip


@dataclass(frozen=True, kw_only=True)
class _Outcome:
    """What one submission came to: the provider's task id, or why the task fails, or
    (`busy`) that the provider stayed at capacity through every delivery of the job."""

    provider_task_id: str | None = None
    # A synchronous provider's finished task (its report, fetched right after `submit`).
    result: ProviderUpdate | None = None
    error: str | None = None
    busy: bool = False


async def _submit(
    providers: Mapping[str, ImageProvider],
    provider_name: str,
    request: ProviderRequest,
    delivery: Delivery,
) -> _Outcome:
    provider = providers.get(provider_name)
    if provider is None:
        return _Outcome(error=f"The provider {provider_name!r} is not configured.")
    try:
        provider_task_id = await provider.submit(request)
        if Capability.synchronous not in provider.capabilities:
            return _Outcome(provider_task_id=provider_task_id)
        return _Outcome(
            provider_task_id=provider_task_id, result=await provider.fetch(provider_task_id)
        )
    except TransientError as exc:
        if not delivery.is_last:
            raise RetryLater(str(exc)) from exc
        if isinstance(exc, ProviderBusy):
            return _Outcome(busy=True)
        return _Outcome(
            error=f"The provider stayed unavailable after {delivery.attempt} attempts: {exc}"
        )
    except PermanentError as exc:
        return _Outcome(error=str(exc))
