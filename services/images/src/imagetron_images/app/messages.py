"""Everything the images service sends, written through the unit of work's outbox.

Domain changes become the contract's events on `events.images.<owner_id>.<type>`; follow-up
work becomes jobs on the WORK stream. Each message gets a fresh id, which the relay also
uses as its `Nats-Msg-Id`.
"""

from __future__ import annotations

from uuid import UUID, uuid4

from imagetron_contracts.models.images import (
    ImageEvent,
    PersistImageJob,
    SubmitTaskJob,
    TaskEvent,
)
from imagetron_contracts.streams import WORK_IMAGES_PERSIST, WORK_IMAGES_SUBMIT
from imagetron_images.app.ports import UnitOfWork
from imagetron_images.app.views import image_view, task_view
from imagetron_images.domain import Capability, GenerationTask, Image, ImageChange, TaskChange


def event_subject(owner_id: UUID, event_type: str) -> str:
    """`event_type` is the family-qualified name, e.g. `task.completed`."""
    return f"events.images.{owner_id}.{event_type}"


async def emit_task_change(uow: UnitOfWork, change: TaskChange, can: frozenset[Capability]) -> None:
    """`can`: what the task's provider can do (the event's task lists its follow-ups)."""
    event_id = uuid4()
    event = TaskEvent(
        id=event_id,
        type=change.type.value,
        occurred_at=change.occurred_at,
        version=change.task.version,
        owner_id=change.task.owner_id,
        task=task_view(change.task, can),
    )
    await uow.emit(event_subject(change.task.owner_id, change.type), event, event_id)


async def emit_image_change(
    uow: UnitOfWork, change: ImageChange, task: GenerationTask | None
) -> None:
    """`task`: the image's task, whose prompt the event carries, so that a subscriber can
    keep its own record of stored images from the events alone."""
    event_id = uuid4()
    event = ImageEvent(
        id=event_id,
        type=change.type.value,
        occurred_at=change.occurred_at,
        version=change.image.version,
        owner_id=change.image.owner_id,
        image=image_view(change.image),
        storage_key=change.image.storage_key if change.image.is_persisted else None,
        prompt_text=task.prompt_text if task is not None else None,
        prompt_title=task.prompt_title if task is not None else None,
    )
    await uow.emit(event_subject(change.image.owner_id, change.type), event, event_id)


async def enqueue_submission(uow: UnitOfWork, task: GenerationTask) -> None:
    job = SubmitTaskJob(task_id=task.id, owner_id=task.owner_id)
    await uow.emit(WORK_IMAGES_SUBMIT, job, uuid4())


async def enqueue_persistence(uow: UnitOfWork, image: Image) -> None:
    job = PersistImageJob(image_id=image.id, owner_id=image.owner_id)
    await uow.emit(WORK_IMAGES_PERSIST, job, uuid4())
