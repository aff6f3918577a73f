"""What the prompts integration tests share: the service's language-model limits in these
tests, and task events as the images service publishes them."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

from imagetron_contracts.models.images import Task, TaskEvent, TaskEventType, TaskStatus

#: The service's LLM limits in these tests: short, so timeouts show in seconds.
LLM_TIMEOUT_SECONDS = 1.0
LLM_MAX_RETRIES = 1
LLM_DEADLINE_SECONDS = 4.0


NOW = datetime(2026, 1, 1, tzinfo=UTC)
STATUS = {
    TaskEventType.task_created: TaskStatus.pending,
    TaskEventType.task_completed: TaskStatus.completed,
    TaskEventType.task_failed: TaskStatus.failed,
    TaskEventType.task_cancelled: TaskStatus.cancelled,
    TaskEventType.task_progress: TaskStatus.processing,
}


def task_event(owner_id, prompt_id, task_id, event_type) -> TaskEvent:
    task = Task(
        id=task_id,
        owner_id=owner_id,
        prompt_id=prompt_id,
        command="imagine",
        status=STATUS[event_type],
        progress=0,
        provider="goapi",
        prompt_text="a lighthouse at dusk",
        aspect_ratio="1:1",
        process_mode="fast",
        actions=[],
        created_at=NOW,
        updated_at=NOW,
    )
    return TaskEvent(
        id=uuid.uuid4(), type=event_type, occurred_at=NOW, owner_id=owner_id, task=task
    )


async def publish(js, event: TaskEvent, msg_id: str | None = None):
    """As the images service's outbox relay publishes it: Nats-Msg-Id = event id."""
    name = event.type.value.removeprefix("task.")
    return await js.publish(
        f"events.images.{event.owner_id}.task.{name}",
        event.model_dump_json().encode(),
        headers={"Nats-Msg-Id": msg_id or str(event.id)},
    )
