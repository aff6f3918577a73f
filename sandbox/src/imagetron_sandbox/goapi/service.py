"""Submitting, reading and cancelling Midjourney tasks (the logic behind the routes)."""

from __future__ import annotations

import uuid
from collections.abc import Callable

from imagetron_sandbox.faults.store import FaultStore
from imagetron_sandbox.goapi.errors import GoApiError
from imagetron_sandbox.goapi.factory import TaskFactory
from imagetron_sandbox.goapi.lifecycle import TaskLifecycle
from imagetron_sandbox.goapi.models import Task, TaskRequest
from imagetron_sandbox.goapi.store import TaskRecord, TaskStore
from imagetron_sandbox.goapi.webhooks import WebhookTarget
from imagetron_sandbox.images.store import ImageStore
from imagetron_sandbox.settings import SandboxSettings


class TaskService:
    def __init__(
        self,
        settings: SandboxSettings,
        faults: FaultStore,
        images: ImageStore,
        lifecycle: TaskLifecycle,
    ) -> None:
        self._tasks = TaskStore()
        self._factory = TaskFactory(settings, faults, images, self._tasks)
        self._lifecycle = lifecycle

    def submit(self, request: TaskRequest, webhook: WebhookTarget | None = None) -> Task:
        return self.start(request, webhook).task.model_copy(deep=True)

    def start(
        self,
        request: TaskRequest,
        webhook: WebhookTarget | None = None,
        annotate: Callable[[TaskRecord], None] | None = None,
    ) -> TaskRecord:
        """A new task, running; ``webhook`` overrides its PiAPI ``webhook_config`` and
        ``annotate`` lets another face (midjourney-proxy) attach what it needs before the
        first notification goes out."""
        record = self._factory.build(str(uuid.uuid4()), request)
        if annotate is not None:
            annotate(record)
        self._tasks.add(record)
        self._lifecycle.start(record, webhook)
        return record

    def record(self, task_id: str) -> TaskRecord | None:
        return self._tasks.get(task_id)

    def stop(self, record: TaskRecord) -> None:
        """End a task that has not finished as ``cancelled``, whatever its stage (the
        midjourney-proxy fork's cancel); a finished one is left alone."""
        if record.task.status not in ("completed", "failed", "cancelled"):
            self._lifecycle.cancel(record)

    def get(self, task_id: str) -> Task:
        return self._record(task_id).task.model_copy(deep=True)

    def cancel(self, task_id: str) -> None:
        record = self._record(task_id)
        if record.task.status != "pending":
            raise GoApiError(
                400, f"task {task_id} is {record.task.status}; only pending tasks can be cancelled"
            )
        self._lifecycle.cancel(record)

    def _record(self, task_id: str) -> TaskRecord:
        record = self._tasks.get(task_id)
        if record is None:
            raise GoApiError(404, f"task not found: {task_id}")
        return record
