"""Generation tasks: create (imagine), read, list, and submit to the provider."""

from __future__ import annotations

import logging
from collections.abc import Mapping

from imagetron_contracts.models.images import (
    ImagineCommand,
    ListTasksQuery,
    ProcessMode,
    SubmitTaskJob,
    Task,
    TaskPage,
    TaskQuery,
    TaskStatus,
)
from imagetron_images.app.clock import utcnow
from imagetron_images.app.jobs import Delivery, RetryLater
from imagetron_images.app.messages import emit_task_change, enqueue_submission
from imagetron_images.app.pagination import (
    DEFAULT_PAGE_SIZE,
    decode_task_cursor,
    encode_task_cursor,
)
from imagetron_images.app.ports import (
    ImageProvider,
    PermanentError,
    TaskPageKey,
    TransientError,
    UnitOfWork,
)
from imagetron_images.app.views import task_view
from imagetron_images.domain import GenerationTask, ProviderRequest, TaskChange
from imagetron_images.domain.tasks import DEFAULT_ASPECT_RATIO
from imagetron_platform.errors import Conflict, NotFound

log = logging.getLogger(__name__)

SUBMIT_CONSUMER = "images-submit"


async def imagine(cmd: ImagineCommand, uow: UnitOfWork, *, provider: str) -> Task:
    task, created = GenerationTask.imagine(
        owner_id=cmd.owner_id,
        prompt_id=cmd.prompt_id,
        prompt_text=cmd.prompt_text,
        aspect_ratio=cmd.aspect_ratio or DEFAULT_ASPECT_RATIO,
        process_mode=cmd.process_mode or ProcessMode.fast,
        provider=provider,
        now=utcnow(),
    )
    async with uow:
        await uow.tasks.add(task)
        await emit_task_change(uow, created)
        await enqueue_submission(uow, task)
        await uow.commit()
    return task_view(task)


async def get_task(query: TaskQuery, uow: UnitOfWork) -> Task:
    async with uow:
        task = await uow.tasks.get(query.owner_id, query.task_id)
    if task is None:
        raise NotFound(f"There is no task {query.task_id}.")
    return task_view(task)


async def list_tasks(query: ListTasksQuery, uow: UnitOfWork) -> TaskPage:
    limit = query.limit or DEFAULT_PAGE_SIZE
    after = decode_task_cursor(query.cursor) if query.cursor else None
    async with uow:
        # One more than asked for tells whether another page follows.
        tasks = await uow.tasks.list(
            query.owner_id, prompt_id=query.prompt_id, status=query.status,
            after=after, limit=limit + 1,
        )  # fmt: skip
    page = tasks[:limit]
    next_cursor = (
        encode_task_cursor(TaskPageKey(created_at=page[-1].created_at, id=page[-1].id))
        if len(tasks) > limit
        else None
    )
    return TaskPage(items=[task_view(t) for t in page], next_cursor=next_cursor)


async def submit_task(
    job: SubmitTaskJob,
    delivery: Delivery,
    uow: UnitOfWork,
    providers: Mapping[str, ImageProvider],
) -> None:
    """Hand a pending task to its provider and record the provider's task id.

    The provider call happens outside any transaction (no row lock held across the
    network). A transient failure is retried by redelivery until the last delivery, which
    fails the task like a refusal does, so no task waits for ever.
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

    provider_task_id, error = (
        await _submit(providers, task.provider, request, delivery)
        if isinstance(request, ProviderRequest)
        else (None, request)
    )

    async with uow:
        if not await uow.claim(SUBMIT_CONSUMER, delivery.message_id):
            log.info("submit job %s was applied before", delivery.message_id)
            return
        task = await uow.tasks.get_for_update(job.task_id)
        if task is None:
            return
        change: TaskChange | None
        if provider_task_id is not None:
            change = task.accept_submission(provider_task_id, utcnow())
        else:
            log.warning("task %s failed at submission: %s", task.id, error)
            change = task.reject_submission(error or "The provider refused the task.", utcnow())
        if change is not None:
            await uow.tasks.update(task)
            await emit_task_change(uow, change)
        await uow.commit()


async def _submit(
    providers: Mapping[str, ImageProvider],
    provider_name: str,
    request: ProviderRequest,
    delivery: Delivery,
) -> tuple[str | None, str | None]:
    """(provider task id, None) on success, (None, why) when the task must fail."""
    provider = providers.get(provider_name)
    if provider is None:
        return None, f"The provider {provider_name!r} is not configured."
    try:
        return await provider.submit(request), None
    except TransientError as exc:
        if not delivery.is_last:
            raise RetryLater(str(exc)) from exc
        return None, f"The provider stayed unavailable after {delivery.attempt} attempts: {exc}"
    except PermanentError as exc:
        return None, str(exc)
