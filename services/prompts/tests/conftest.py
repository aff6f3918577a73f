"""Fakes of the prompts service's ports, for unit tests: an in-memory unit of work with the
same commit/rollback semantics as the SQL one, a scripted language model, and a clock that
ticks."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any
from uuid import UUID, uuid4

import pytest
from pydantic import BaseModel, ValidationError

from imagetron_contracts.models.images import Task, TaskEvent, TaskEventType, TaskStatus
from imagetron_prompts.app.dependencies import Dependencies
from imagetron_prompts.app.ports import (
    LlmAnswer,
    LlmError,
    LlmMessage,
    LlmOutcome,
)
from imagetron_prompts.domain.prompt import Prompt
from imagetron_prompts.domain.usage import TokenUsage

from .fakes import FakeUnitOfWork, InMemoryStore


class TickingClock:
    """Each reading is one second after the previous one: every row gets its own time."""

    def __init__(self, start: datetime = datetime(2026, 1, 1, 12, 0, tzinfo=UTC)) -> None:
        self.now = start

    def __call__(self) -> datetime:
        self.now += timedelta(seconds=1)
        return self.now


@dataclass
class AskedLlm:
    messages: list[LlmMessage]
    answer_type: type[BaseModel]


Script = dict[str, Any] | LlmError | Callable[[list[LlmMessage]], dict[str, Any]]


class ScriptedLlm:
    """The language model port, answering from a script: each call takes the next entry, a
    JSON-like dict (validated by the answer type and the use case's check, as the real
    adapter does; a dict that fails is a `malformed` LlmError), an LlmError to raise, or a
    function of the messages returning a dict. Every call costs 10 + 5 tokens."""

    model = "scripted-model"

    def __init__(self) -> None:
        self.script: list[Script] = []
        self.asked: list[AskedLlm] = []

    def answers(self, *entries: Script) -> ScriptedLlm:
        self.script += entries
        return self

    async def answer(
        self,
        messages: Sequence[LlmMessage],
        answer_type: type[Any],
        *,
        check: Callable[[Any], None] | None = None,
    ) -> LlmAnswer[Any]:
        self.asked.append(AskedLlm(list(messages), answer_type))
        usage = TokenUsage(model=self.model, prompt_tokens=10, completion_tokens=5, attempts=1)
        assert self.script, "the language model was asked more often than scripted"
        entry = self.script.pop(0)
        if isinstance(entry, LlmError):
            raise entry
        raw = entry(list(messages)) if callable(entry) else entry
        try:
            value = answer_type.model_validate(raw)
            if check is not None:
                check(value)
        except (ValidationError, ValueError) as exc:
            raise LlmError(LlmOutcome.MALFORMED, str(exc), usage) from exc
        return LlmAnswer(value=value, usage=usage)


@pytest.fixture
def llm() -> ScriptedLlm:
    return ScriptedLlm()


@pytest.fixture
def store() -> InMemoryStore:
    return InMemoryStore()


@pytest.fixture
def clock() -> TickingClock:
    return TickingClock()


@pytest.fixture
def deps(store: InMemoryStore, clock: TickingClock, llm: ScriptedLlm) -> Dependencies:
    return Dependencies(new_uow=lambda: FakeUnitOfWork(store), clock=clock, llm=llm)


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

    def make(
        owner_id: UUID,
        text: str = "a lighthouse at dusk",
        title: str | None = None,
        **changes: object,
    ) -> Prompt:
        prompt = Prompt.create(owner_id=owner_id, text=text, title=title, now=clock())
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
    version: int = 0,
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
        actions=[],
        created_at=_T,
        updated_at=_T,
    )
    return TaskEvent(
        id=event_id or uuid4(), type=event_type, occurred_at=_T, owner_id=owner_id, task=task,
        version=version,
    )  # fmt: skip


@pytest.fixture
def task_event():
    """`task_event(prompt_id, TaskEventType.task_created, task_id=..., owner_id=...)`"""
    return _task_event
