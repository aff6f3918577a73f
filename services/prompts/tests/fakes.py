"""In-memory fakes of the prompts service's unit of work and repositories, with the same
commit/rollback semantics as the SQL ones; test_repository_contract.py holds them to the
SQL repositories' behaviour."""

from __future__ import annotations

import copy
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from uuid import UUID

from imagetron_platform.pagination import PageKey
from imagetron_platform.testing import (
    InMemoryDatabase,
    InMemoryUnitOfWork,
    insert_once,
    select_owned,
)
from imagetron_prompts.app.ports import LlmCall, PromptFilter
from imagetron_prompts.domain.chat import Chat, ChatMessage
from imagetron_prompts.domain.prompt import Prompt, TaskPhase


@dataclass
class InMemoryState:
    prompts: dict[UUID, Prompt] = field(default_factory=dict)
    # task id -> (prompt id, phase, when it was recorded)
    task_phases: dict[UUID, tuple[UUID, TaskPhase, datetime]] = field(default_factory=dict)
    # task id -> the newest version of its events that moved its phase
    task_versions: dict[UUID, int] = field(default_factory=dict)
    chats: dict[UUID, Chat] = field(default_factory=dict)
    llm_calls: list[LlmCall] = field(default_factory=list)
    # prompt id -> (owner id, when it was deleted)
    deleted_prompts: dict[UUID, tuple[UUID, datetime]] = field(default_factory=dict)


class InMemoryStore(InMemoryDatabase[InMemoryState]):
    """What PostgreSQL holds: only committed state."""

    def __init__(self) -> None:
        super().__init__(InMemoryState())

    def add_prompt(self, prompt: Prompt) -> None:
        self.committed.prompts[prompt.id] = copy.deepcopy(prompt)


class FakePromptRepository:
    def __init__(self, state: InMemoryState) -> None:
        self._state = state
        self.fail_on_save = False

    async def add(self, prompt: Prompt) -> bool:
        return insert_once(self._state.prompts, prompt.id, prompt)

    async def get(
        self, owner_id: UUID, prompt_id: UUID, *, for_update: bool = False
    ) -> Prompt | None:
        return select_owned(self._state.prompts, prompt_id, owner_id)

    async def save(self, prompt: Prompt) -> None:
        if self.fail_on_save:
            raise ConnectionError("database went away")
        assert prompt.id in self._state.prompts
        self._state.prompts[prompt.id] = copy.deepcopy(prompt)

    async def delete(self, prompt: Prompt) -> None:
        del self._state.prompts[prompt.id]
        self._state.task_phases = {
            task: known for task, known in self._state.task_phases.items() if known[0] != prompt.id
        }
        self._state.deleted_prompts.setdefault(prompt.id, (prompt.owner_id, prompt.updated_at))

    async def was_deleted(self, owner_id: UUID, prompt_id: UUID) -> bool:
        gone = self._state.deleted_prompts.get(prompt_id)
        return gone is not None and gone[0] == owner_id

    async def forget_deleted(self, before: datetime, limit: int) -> int:
        old = [i for i, (_, at) in self._state.deleted_prompts.items() if at < before][:limit]
        for prompt_id in old:
            del self._state.deleted_prompts[prompt_id]
        return len(old)

    async def linked_to_chat(self, owner_id: UUID, chat_id: UUID) -> Sequence[Prompt]:
        return [
            copy.deepcopy(p)
            for p in self._state.prompts.values()
            if p.owner_id == owner_id and p.chat_id == chat_id
        ]

    async def list_page(
        self,
        owner_id: UUID,
        *,
        limit: int,
        after: PageKey | None,
        where: PromptFilter | None = None,
    ) -> Sequence[Prompt]:
        mine = [p for p in self._state.prompts.values() if p.owner_id == owner_id]
        if where is not None:
            if where.status is not None:
                mine = [p for p in mine if p.status is where.status]
            if where.chat_id is not None:
                mine = [p for p in mine if p.chat_id == where.chat_id]
            if where.text:
                needle = where.text.casefold()
                mine = [
                    p
                    for p in mine
                    if needle in p.text.casefold() or needle in (p.title or "").casefold()
                ]
        mine.sort(key=lambda p: (p.created_at, p.id), reverse=True)
        if after is not None:
            mine = [p for p in mine if (p.created_at, p.id) < (after.created_at, after.id)]
        return [copy.deepcopy(p) for p in mine[:limit]]

    async def task_phase(self, prompt_id: UUID, task_id: UUID) -> TaskPhase | None:
        known = self._state.task_phases.get(task_id)
        return known[1] if known is not None and known[0] == prompt_id else None

    async def task_version(self, prompt_id: UUID, task_id: UUID) -> int:
        known = self._state.task_phases.get(task_id)
        if known is None or known[0] != prompt_id:
            return 0
        return self._state.task_versions.get(task_id, 0)

    async def save_task_phase(
        self, prompt_id: UUID, task_id: UUID, phase: TaskPhase, now: datetime, version: int = 0
    ) -> None:
        self._state.task_phases[task_id] = (prompt_id, phase, now)
        self._state.task_versions[task_id] = max(self._state.task_versions.get(task_id, 0), version)

    async def reservations_before(
        self, moment: datetime, limit: int
    ) -> Sequence[tuple[UUID, UUID, UUID]]:
        found = sorted(
            (at, self._state.prompts[prompt].owner_id, prompt, task)
            for task, (prompt, phase, at) in self._state.task_phases.items()
            if phase is TaskPhase.RESERVED and at < moment and prompt in self._state.prompts
        )
        return [(owner, prompt, task) for _, owner, prompt, task in found[:limit]]


class FakeChatRepository:
    def __init__(self, state: InMemoryState) -> None:
        self._state = state

    async def add(self, chat: Chat) -> None:
        assert chat.id not in self._state.chats
        self._state.chats[chat.id] = copy.deepcopy(chat)

    async def get(
        self, owner_id: UUID, chat_id: UUID, *, for_update: bool = False, messages: bool = True
    ) -> Chat | None:
        found = select_owned(self._state.chats, chat_id, owner_id)
        if found is not None and not messages:
            found.messages = []
        return found

    async def add_messages(self, chat: Chat, messages: Sequence[ChatMessage]) -> None:
        stored = self._state.chats[chat.id]
        taken = {m.position for m in stored.messages}
        assert not taken & {m.position for m in messages}, "position already taken"
        stored.messages += copy.deepcopy(list(messages))
        stored.message_count = chat.message_count
        stored.updated_at = chat.updated_at

    async def delete(self, chat: Chat) -> None:
        del self._state.chats[chat.id]

    async def list_page(
        self, owner_id: UUID, *, limit: int, after: PageKey | None
    ) -> Sequence[Chat]:
        mine = [c for c in self._state.chats.values() if c.owner_id == owner_id]
        mine.sort(key=lambda c: (c.created_at, c.id), reverse=True)
        if after is not None:
            mine = [c for c in mine if (c.created_at, c.id) < (after.created_at, after.id)]
        page = [copy.deepcopy(c) for c in mine[:limit]]
        for chat in page:
            chat.messages = []
        return page


class FakeLlmCallRepository:
    def __init__(self, state: InMemoryState) -> None:
        self._state = state

    async def add(self, call: LlmCall) -> bool:
        if any(c.id == call.id for c in self._state.llm_calls):
            return False
        self._state.llm_calls.append(call)
        return True

    async def get(self, owner_id: UUID, call_id: UUID) -> LlmCall | None:
        found = (c for c in self._state.llm_calls if (c.id, c.owner_id) == (call_id, owner_id))
        return next(found, None)


class FakeUnitOfWork(InMemoryUnitOfWork[InMemoryState]):
    """The platform's in-memory transaction, outbox and inbox, plus our repositories;
    `fail_on_save` makes saving a prompt fail as a lost connection would."""

    prompts: FakePromptRepository
    chats: FakeChatRepository
    llm_calls: FakeLlmCallRepository
    fail_on_save = False

    def open_repositories(self, state: InMemoryState) -> None:
        self.prompts = FakePromptRepository(state)
        self.prompts.fail_on_save = self.fail_on_save
        self.chats = FakeChatRepository(state)
        self.llm_calls = FakeLlmCallRepository(state)
