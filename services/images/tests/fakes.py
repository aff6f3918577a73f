"""In-memory fakes of the images service's unit of work and repositories, held to the SQL
repositories' behaviour by integration/test_repository_contract.py."""

from __future__ import annotations

import copy
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from types import TracebackType
from typing import Any, Self
from uuid import UUID

from pydantic import BaseModel

from imagetron_contracts.models.images import ImageKind, TaskStatus
from imagetron_images.app.ports import ImagePageKey
from imagetron_images.domain import GenerationTask, Image
from imagetron_platform.pagination import PageKey


@dataclass
class Emitted:
    subject: str
    payload: dict[str, Any]
    message_id: UUID


@dataclass
class _State:
    tasks: dict[UUID, GenerationTask] = field(default_factory=dict)
    images: dict[UUID, Image] = field(default_factory=dict)
    outbox: list[Emitted] = field(default_factory=list)
    inbox: set[tuple[str, str]] = field(default_factory=set)


class FakeTaskRepository:
    def __init__(self, state: _State) -> None:
        self._state = state

    async def add(self, task: GenerationTask) -> None:
        assert task.id not in self._state.tasks
        self._state.tasks[task.id] = copy.copy(task)

    async def get(self, owner_id: UUID, task_id: UUID) -> GenerationTask | None:
        task = self._state.tasks.get(task_id)
        return copy.copy(task) if task is not None and task.owner_id == owner_id else None

    async def get_for_update(self, task_id: UUID) -> GenerationTask | None:
        task = self._state.tasks.get(task_id)
        return copy.copy(task) if task is not None else None

    async def update(self, task: GenerationTask) -> None:
        assert task.id in self._state.tasks
        self._state.tasks[task.id] = copy.copy(task)

    async def lock_provider(self, provider: str) -> None:
        pass  # one unit of work at a time here

    async def count_in_flight(self, provider: str) -> int:
        return sum(t.provider == provider and t.takes_a_slot for t in self._state.tasks.values())

    async def oldest_waiting(self, provider: str, limit: int) -> Sequence[GenerationTask]:
        waiting = sorted(
            (t for t in self._state.tasks.values()
             if t.provider == provider and t.is_waiting_for_a_slot),
            key=lambda t: (t.created_at, t.id),
        )  # fmt: skip
        return [copy.copy(t) for t in waiting[:limit]]

    async def queue_position(self, task: GenerationTask) -> int:
        return 1 + sum(
            t.provider == task.provider and t.is_waiting_for_a_slot
            and (t.created_at, t.id) < (task.created_at, task.id)
            for t in self._state.tasks.values()
        )  # fmt: skip

    async def count_by_state(self) -> tuple[dict[tuple[str, TaskStatus], int], dict[str, int]]:
        by_state: dict[tuple[str, TaskStatus], int] = {}
        waiting: dict[str, int] = {}
        for t in self._state.tasks.values():
            by_state[(t.provider, t.status)] = by_state.get((t.provider, t.status), 0) + 1
            if t.is_waiting_for_a_slot:
                waiting[t.provider] = waiting.get(t.provider, 0) + 1
        return by_state, waiting

    async def claim_awaiting_provider(
        self, *, quiet_since: datetime, now: datetime, limit: int
    ) -> Sequence[GenerationTask]:
        quiet = sorted(
            (
                t for t in self._state.tasks.values()
                if t.status in (TaskStatus.submitted, TaskStatus.processing)
                and t.updated_at < quiet_since
                and (t.reconciled_at is None or t.reconciled_at < quiet_since)
            ),
            key=lambda t: t.updated_at,
        )[:limit]  # fmt: skip
        for task in quiet:
            task.mark_reconciled(now)
        return [copy.copy(t) for t in quiet]

    async def list(
        self,
        owner_id: UUID,
        *,
        prompt_id: UUID | None,
        status: TaskStatus | None,
        after: PageKey | None,
        limit: int,
    ) -> Sequence[GenerationTask]:
        found = [
            t for t in self._state.tasks.values()
            if t.owner_id == owner_id
            and (prompt_id is None or t.prompt_id == prompt_id)
            and (status is None or t.status is status)
            and (after is None or (t.created_at, t.id) < (after.created_at, after.id))
        ]  # fmt: skip
        found.sort(key=lambda t: (t.created_at, t.id), reverse=True)
        return [copy.copy(t) for t in found[:limit]]


class FakeImageRepository:
    def __init__(self, state: _State) -> None:
        self._state = state

    async def add(self, images: Sequence[Image]) -> None:
        for image in images:
            assert image.id not in self._state.images
            self._state.images[image.id] = copy.copy(image)

    async def get(self, owner_id: UUID, image_id: UUID) -> Image | None:
        image = self._state.images.get(image_id)
        return copy.copy(image) if image is not None and image.owner_id == owner_id else None

    async def get_for_update(self, owner_id: UUID, image_id: UUID) -> Image | None:
        return await self.get(owner_id, image_id)

    async def count_by_state(self) -> dict[str, int]:
        counts: dict[str, int] = {}
        for i in self._state.images.values():
            state = "stored" if i.is_persisted else "failed" if i.error is not None else "pending"
            counts[state] = counts.get(state, 0) + 1
        return counts

    async def update(self, image: Image) -> None:
        assert image.id in self._state.images
        self._state.images[image.id] = copy.copy(image)

    async def list(
        self,
        owner_id: UUID,
        *,
        task_id: UUID | None,
        prompt_id: UUID | None,
        kind: ImageKind | None,
        is_persisted: bool | None = None,
        after: ImagePageKey | None,
        limit: int,
    ) -> Sequence[Image]:
        def key(i: Image) -> tuple[Any, ...]:
            # Newest first, then the task, then the index ascending.
            return (-i.created_at.timestamp(), _neg_uuid(i.task_id), i.index)

        found = [
            i for i in self._state.images.values()
            if i.owner_id == owner_id
            and (task_id is None or i.task_id == task_id)
            and (prompt_id is None or i.prompt_id == prompt_id)
            and (kind is None or i.kind is kind)
            and (is_persisted is None or i.is_persisted is is_persisted)
        ]  # fmt: skip
        found.sort(key=key)
        if after is not None:
            cut = (-after.created_at.timestamp(), _neg_uuid(after.task_id), after.index)
            found = [i for i in found if key(i) > cut]
        return [copy.copy(i) for i in found[:limit]]


def _neg_uuid(value: UUID) -> int:
    return -value.int


class FakeUnitOfWork:
    """In memory, with the real thing's semantics: nothing is visible outside until commit,
    and leaving without commit discards the changes, the emitted messages and the claims."""

    def __init__(self, state: _State | None = None) -> None:
        self.committed = state or _State()
        self._working: _State | None = None
        self.commits = 0

    @property
    def tasks(self) -> FakeTaskRepository:
        return FakeTaskRepository(self._open())

    @property
    def images(self) -> FakeImageRepository:
        return FakeImageRepository(self._open())

    def _open(self) -> _State:
        assert self._working is not None, "use `async with uow:`"
        return self._working

    async def __aenter__(self) -> Self:
        assert self._working is None, "unit of work already open"
        self._working = copy.deepcopy(self.committed)
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._working = None

    async def commit(self) -> None:
        self.committed = self._open()
        self._working = copy.deepcopy(self.committed)
        self.commits += 1

    async def emit(self, subject: str, payload: BaseModel, message_id: UUID) -> None:
        self._open().outbox.append(Emitted(subject, payload.model_dump(mode="json"), message_id))

    async def claim(self, consumer: str, message_id: str) -> bool:
        inbox = self._open().inbox
        if (consumer, message_id) in inbox:
            return False
        inbox.add((consumer, message_id))
        return True

    # --- what tests look at -----------------------------------------------------------

    @property
    def outbox(self) -> list[Emitted]:
        return self.committed.outbox

    def subjects(self) -> list[str]:
        return [m.subject for m in self.committed.outbox]

    def task(self, task_id: UUID) -> GenerationTask:
        return self.committed.tasks[task_id]

    def images_of(self, task_id: UUID) -> list[Image]:
        return sorted(
            (i for i in self.committed.images.values() if i.task_id == task_id),
            key=lambda i: i.index,
        )
