"""The in-memory task table."""

from __future__ import annotations

import asyncio
from collections import OrderedDict
from dataclasses import dataclass, field

from imagetron_sandbox.faults.knobs import FaultKnobs
from imagetron_sandbox.faults.tokens import Overrides
from imagetron_sandbox.goapi.models import ProcessMode, Task
from imagetron_sandbox.goapi.plan import RenderPlan
from imagetron_sandbox.goapi.webhooks import WebhookDispatcher
from imagetron_sandbox.images.geometry import AspectRatio

_MAX_TASKS = 10_000


@dataclass(slots=True)
class TaskRecord:
    """A task plus what only the sandbox knows about it."""

    task: Task
    prompt: str
    aspect: AspectRatio
    process_mode: ProcessMode
    plan: RenderPlan
    knobs: FaultKnobs
    fault_overrides: Overrides
    runner: asyncio.Task[None] | None = None
    outbox: WebhookDispatcher | None = None
    split_names: tuple[str, ...] = field(default=())
    upscale_name: str | None = None
    # What another face (midjourney-proxy) keeps about the task: its action, state, ...
    annotations: dict[str, str] = field(default_factory=dict)

    @property
    def task_id(self) -> str:
        return self.task.task_id


class TaskStore:
    def __init__(self, capacity: int = _MAX_TASKS) -> None:
        self._records: OrderedDict[str, TaskRecord] = OrderedDict()
        self._capacity = capacity

    def add(self, record: TaskRecord) -> None:
        self._records[record.task_id] = record
        while len(self._records) > self._capacity:
            self._records.popitem(last=False)

    def get(self, task_id: str) -> TaskRecord | None:
        return self._records.get(task_id)
