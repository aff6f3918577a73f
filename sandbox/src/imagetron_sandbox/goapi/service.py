"""Submitting, reading and cancelling Midjourney tasks (the logic behind the routes)."""

from __future__ import annotations

import uuid

from imagetron_sandbox.faults.store import FaultStore
from imagetron_sandbox.goapi.errors import GoApiError
from imagetron_sandbox.goapi.factory import TaskFactory
from imagetron_sandbox.goapi.lifecycle import TaskLifecycle
from imagetron_sandbox.goapi.models import Task, TaskRequest
from imagetron_sandbox.goapi.store import TaskRecord, TaskStore
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

    def submit(self, request: TaskRequest) -> Task:
        record = self._factory.build(str(uuid.uuid4()), request)
        self._tasks.add(record)
        self._lifecycle.start(record)
        return record.task.model_copy(deep=True)

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
