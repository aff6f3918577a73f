"""In-memory fakes of the images service's unit of work and repositories, held to the SQL
repositories' behaviour by test_repository_contract.py."""

from __future__ import annotations

import copy
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any
from uuid import UUID

from imagetron_contracts.models.images import ImageKind, TaskCommand, TaskStatus
from imagetron_images.adapters.repositories import MIN_SAMPLES
from imagetron_images.app.ports import ImagePageKey
from imagetron_images.domain import GenerationTask, Image
from imagetron_platform.pagination import PageKey
from imagetron_platform.testing import InMemoryUnitOfWork, insert_once, select_owned


@dataclass
class Tables:
    """What the service's tables hold (the platform's database keeps the outbox and inbox)."""

    tasks: dict[UUID, GenerationTask] = field(default_factory=dict)
    images: dict[UUID, Image] = field(default_factory=dict)


def _age(task: GenerationTask) -> tuple[datetime, UUID]:
    return (task.created_at, task.id)


def _percentile(ordered: list[float], quantile: float) -> float:
    """PostgreSQL's percentile_cont: linear interpolation between the closest ranks."""
    position = quantile * (len(ordered) - 1)
    low = int(position)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (position - low)


class FakeTaskRepository:
    def __init__(self, state: Tables) -> None:
        self._state = state

    async def add(self, task: GenerationTask) -> bool:
        return insert_once(self._state.tasks, task.id, task)

    async def get(self, owner_id: UUID, task_id: UUID) -> GenerationTask | None:
        return select_owned(self._state.tasks, task_id, owner_id)

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

    def _fair_queue(self, provider: str) -> list[GenerationTask]:
        """The waiting tasks in fair-share order (see app.dispatch)."""
        tasks = [t for t in self._state.tasks.values() if t.provider == provider]
        in_flight = Counter(t.owner_id for t in tasks if t.takes_a_slot)
        older: Counter[UUID] = Counter()
        turns = []
        for t in sorted((t for t in tasks if t.is_waiting_for_a_slot), key=_age):
            turns.append((in_flight[t.owner_id] + older[t.owner_id], *_age(t), t))
            older[t.owner_id] += 1
        return [turn[-1] for turn in sorted(turns, key=lambda turn: turn[:-1])]

    async def next_waiting(self, provider: str, limit: int) -> Sequence[GenerationTask]:
        return [copy.copy(t) for t in self._fair_queue(provider)[:limit]]

    async def queue_position(self, task: GenerationTask) -> int:
        queue = [t.id for t in self._fair_queue(task.provider)]
        return queue.index(task.id) + 1 if task.id in queue else 1

    async def count_by_state(self) -> tuple[dict[tuple[str, TaskStatus], int], dict[str, int]]:
        by_state: dict[tuple[str, TaskStatus], int] = {}
        waiting: dict[str, int] = {}
        for t in self._state.tasks.values():
            by_state[(t.provider, t.status)] = by_state.get((t.provider, t.status), 0) + 1
            if t.is_waiting_for_a_slot:
                waiting[t.provider] = waiting.get(t.provider, 0) + 1
        return by_state, waiting

    async def claim_due_for_poll(
        self,
        *,
        now: datetime,
        quiet_for: Mapping[tuple[str, TaskCommand], timedelta],
        default_quiet_for: timedelta,
        lease: timedelta,
        limit: int,
    ) -> Sequence[GenerationTask]:
        def due(t: GenerationTask) -> bool:
            if t.status not in (TaskStatus.submitted, TaskStatus.processing):
                return False
            if t.poll_after is not None:
                return t.poll_after <= now
            return t.updated_at <= now - quiet_for.get((t.provider, t.command), default_quiet_for)

        claimed = sorted(filter(due, self._state.tasks.values()), key=lambda t: t.updated_at)
        for task in claimed[:limit]:
            task.reconciled_at, task.poll_after = now, now + lease
        return [copy.copy(t) for t in claimed[:limit]]

    async def renew_poll_claim(
        self, task_id: UUID, *, claimed_at: datetime, until: datetime
    ) -> bool:
        task = self._state.tasks.get(task_id)
        if task is None or task.reconciled_at != claimed_at:
            return False
        if task.status not in (TaskStatus.submitted, TaskStatus.processing):
            return False
        task.poll_after = until
        return True

    async def lock_overdue(self, now: datetime, limit: int) -> Sequence[GenerationTask]:
        overdue = [
            t for t in self._state.tasks.values()
            if t.takes_a_slot and t.deadline_at is not None and t.deadline_at <= now
        ]  # fmt: skip
        overdue.sort(key=lambda t: t.deadline_at or now)
        return [copy.copy(t) for t in overdue[:limit]]

    async def typical_durations(
        self, since: datetime, quantile: float
    ) -> Mapping[tuple[str, TaskCommand], timedelta]:
        took: dict[tuple[str, TaskCommand], list[float]] = {}
        for t in self._state.tasks.values():
            if (
                t.status is TaskStatus.completed and t.completed_at is not None
                and t.completed_at >= since and t.submitted_at is not None
            ):  # fmt: skip
                seconds = (t.completed_at - t.submitted_at).total_seconds()
                took.setdefault((t.provider, t.command), []).append(seconds)
        return {
            key: timedelta(seconds=_percentile(sorted(values), quantile))
            for key, values in took.items()
            if len(values) >= MIN_SAMPLES
        }

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
    def __init__(self, state: Tables) -> None:
        self._state = state

    async def add(self, images: Sequence[Image]) -> None:
        for image in images:
            assert image.id not in self._state.images
            self._state.images[image.id] = copy.copy(image)

    async def get(self, owner_id: UUID, image_id: UUID) -> Image | None:
        return select_owned(self._state.images, image_id, owner_id)

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


class FakeUnitOfWork(InMemoryUnitOfWork[Tables]):
    """The platform's in-memory transaction, outbox and inbox, plus our repositories."""

    tasks: FakeTaskRepository
    images: FakeImageRepository

    def open_repositories(self, state: Tables) -> None:
        self.tasks = FakeTaskRepository(state)
        self.images = FakeImageRepository(state)

    # What tests look at, besides the platform's committed state, outbox and inbox.

    def task(self, task_id: UUID) -> GenerationTask:
        return self.committed.tasks[task_id]

    def images_of(self, task_id: UUID) -> list[Image]:
        return sorted(
            (i for i in self.committed.images.values() if i.task_id == task_id),
            key=lambda i: i.index,
        )


class FakePromptLedger:
    """The prompts service's ledger: records reservations; `refuse` makes it answer with
    that error (a 404 or 409 of the prompts service, or its being down)."""

    def __init__(self) -> None:
        self.reserved: set[tuple[UUID, UUID]] = set()  # (prompt_id, task_id)
        self.released: set[tuple[UUID, UUID]] = set()
        self.refuse: Exception | None = None

    async def reserve(self, owner_id: UUID, prompt_id: UUID, task_id: UUID) -> None:
        if self.refuse is not None:
            raise self.refuse
        self.reserved.add((prompt_id, task_id))

    async def release(self, owner_id: UUID, prompt_id: UUID, task_id: UUID) -> None:
        self.released.add((prompt_id, task_id))
