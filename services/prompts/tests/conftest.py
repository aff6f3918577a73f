"""Fakes of the prompts service's ports, for unit tests: an in-memory unit of work with the
same commit/rollback semantics as the SQL one, and a clock that ticks."""

from __future__ import annotations

import copy
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Self
from uuid import UUID, uuid4

import pytest
from imagetron_contracts.models.images import Task, TaskEvent, TaskStatus
from imagetron_contracts.models.images import Type as TaskEventType
from imagetron_prompts.app.ports import Dependencies, PageKey
from imagetron_prompts.domain.prompt import Prompt, TaskPhase
from pydantic import BaseModel


@dataclass(frozen=True)
class Emitted:
    subject: str
    payload: BaseModel
    message_id: UUID


@dataclass
class InMemoryState:
    prompts: dict[UUID, Prompt] = field(default_factory=dict)
    task_phases: dict[UUID, tuple[UUID, TaskPhase]] = field(default_factory=dict)
    inbox: set[tuple[str, str]] = field(default_factory=set)
    outbox: list[Emitted] = field(default_factory=list)


class InMemoryStore:
    """What PostgreSQL holds: only committed state."""

    def __init__(self) -> None:
        self.committed = InMemoryState()
        self.commits = 0

    def add_prompt(self, prompt: Prompt) -> None:
        self.committed.prompts[prompt.id] = copy.deepcopy(prompt)


class FakePromptRepository:
    def __init__(self, state: InMemoryState) -> None:
        self._state = state
        self.fail_on_save = False

    async def add(self, prompt: Prompt) -> None:
        assert prompt.id not in self._state.prompts
        self._state.prompts[prompt.id] = copy.deepcopy(prompt)

    async def get(
        self, owner_id: UUID, prompt_id: UUID, *, for_update: bool = False
    ) -> Prompt | None:
        prompt = self._state.prompts.get(prompt_id)
        if prompt is None or prompt.owner_id != owner_id:
            return None
        return copy.deepcopy(prompt)

    async def save(self, prompt: Prompt) -> None:
        if self.fail_on_save:
            raise ConnectionError("database went away")
        assert prompt.id in self._state.prompts
        self._state.prompts[prompt.id] = copy.deepcopy(prompt)

    async def list_page(
        self, owner_id: UUID, *, limit: int, after: PageKey | None
    ) -> Sequence[Prompt]:
        mine = [p for p in self._state.prompts.values() if p.owner_id == owner_id]
        mine.sort(key=lambda p: (p.created_at, p.id), reverse=True)
        if after is not None:
            mine = [p for p in mine if (p.created_at, p.id) < (after.created_at, after.id)]
        return [copy.deepcopy(p) for p in mine[:limit]]

    async def task_phase(self, prompt_id: UUID, task_id: UUID) -> TaskPhase | None:
        known = self._state.task_phases.get(task_id)
        return known[1] if known is not None and known[0] == prompt_id else None

    async def save_task_phase(
        self, prompt_id: UUID, task_id: UUID, phase: TaskPhase, now: datetime
    ) -> None:
        self._state.task_phases[task_id] = (prompt_id, phase)


class FakeUnitOfWork:
    """Works on a copy of the store's state; `commit` makes the copy the committed state."""

    def __init__(self, store: InMemoryStore) -> None:
        self._store = store
        self._state: InMemoryState | None = None
        self._prompts: FakePromptRepository | None = None
        self.fail_on_save = False

    @property
    def prompts(self) -> FakePromptRepository:
        assert self._prompts is not None, "the unit of work is not open"
        return self._prompts

    async def __aenter__(self) -> Self:
        assert self._state is None, "the unit of work is not reentrant"
        self._state = copy.deepcopy(self._store.committed)
        self._prompts = FakePromptRepository(self._state)
        self._prompts.fail_on_save = self.fail_on_save
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        self._state = None
        self._prompts = None

    async def commit(self) -> None:
        assert self._state is not None, "the unit of work is not open"
        self._store.committed = copy.deepcopy(self._state)
        self._store.commits += 1

    async def emit(self, subject: str, payload: BaseModel, message_id: UUID) -> None:
        assert self._state is not None, "the unit of work is not open"
        self._state.outbox.append(Emitted(subject, payload, message_id))

    async def claim(self, consumer: str, message_id: str) -> bool:
        assert self._state is not None, "the unit of work is not open"
        if (consumer, message_id) in self._state.inbox:
            return False
        self._state.inbox.add((consumer, message_id))
        return True


class TickingClock:
    """Each reading is one second after the previous one: every row gets its own time."""

    def __init__(self, start: datetime = datetime(2026, 1, 1, 12, 0, tzinfo=UTC)) -> None:
        self.now = start

    def __call__(self) -> datetime:
        self.now += timedelta(seconds=1)
        return self.now


@pytest.fixture
def store() -> InMemoryStore:
    return InMemoryStore()


@pytest.fixture
def clock() -> TickingClock:
    return TickingClock()


@pytest.fixture
def deps(store: InMemoryStore, clock: TickingClock) -> Dependencies:
    return Dependencies(uow=lambda: FakeUnitOfWork(store), clock=clock)


@pytest.fixture
def make_uow(store: InMemoryStore):
    def make(*, fail_on_save: bool = False) -> FakeUnitOfWork:
        uow = FakeUnitOfWork(store)
        uow.fail_on_save = fail_on_save
        return uow

    return make


@pytest.fixture
def stored_prompt(store: InMemoryStore, clock: TickingClock):
    """Puts a prompt straight into the store and returns it."""

    def make(owner_id: UUID, text: str = "a lighthouse at dusk", **changes: object) -> Prompt:
        prompt = Prompt.create(owner_id=owner_id, text=text, title=None, now=clock())
        for name, value in changes.items():
            setattr(prompt, name, value)
        store.add_prompt(prompt)
        return prompt

    return make


_T = datetime(2026, 1, 1, tzinfo=UTC)
_STATUS_OF = {
    TaskEventType.task_created: TaskStatus.pending,
    TaskEventType.task_submitted: TaskStatus.submitted,
    TaskEventType.task_progress: TaskStatus.processing,
    TaskEventType.task_completed: TaskStatus.completed,
    TaskEventType.task_failed: TaskStatus.failed,
    TaskEventType.task_cancelled: TaskStatus.cancelled,
}


def _task_event(
    prompt_id: UUID,
    event_type: TaskEventType,
    *,
    task_id: UUID,
    owner_id: UUID,
    event_id: UUID | None = None,
) -> TaskEvent:
    task = Task(
        id=task_id,
        owner_id=owner_id,
        prompt_id=prompt_id,
        command="imagine",
        status=_STATUS_OF[event_type],
        progress=100 if event_type is TaskEventType.task_completed else 0,
        provider="goapi",
        prompt_text="a lighthouse at dusk",
        aspect_ratio="1:1",
        process_mode="fast",
        created_at=_T,
        updated_at=_T,
    )
    return TaskEvent(
        id=event_id or uuid4(), type=event_type, occurred_at=_T, owner_id=owner_id, task=task
    )


@pytest.fixture
def task_event():
    """`task_event(prompt_id, TaskEventType.task_created, task_id=..., owner_id=...)`"""
    return _task_event
