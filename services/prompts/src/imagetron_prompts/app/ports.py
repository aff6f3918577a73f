"""What the handlers need from the outside world, as protocols the adapters implement."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from types import TracebackType
from typing import Protocol, Self
from uuid import UUID

from pydantic import BaseModel

from imagetron_prompts.domain.prompt import Prompt, TaskPhase

Clock = Callable[[], datetime]


@dataclass(frozen=True)
class PageKey:
    """A position in a newest-first listing: the last item the previous page showed."""

    created_at: datetime
    id: UUID


class PromptRepository(Protocol):
    async def add(self, prompt: Prompt) -> None: ...

    async def get(
        self, owner_id: UUID, prompt_id: UUID, *, for_update: bool = False
    ) -> Prompt | None:
        """The owner's prompt, or None (also when another owner has it). `for_update` locks
        it until the unit of work ends."""
        ...

    async def save(self, prompt: Prompt) -> None:
        """Write back a prompt read in this unit of work."""
        ...

    async def list_page(
        self, owner_id: UUID, *, limit: int, after: PageKey | None
    ) -> Sequence[Prompt]:
        """Up to `limit` of the owner's prompts, newest first, strictly after `after`."""
        ...

    async def task_phase(self, prompt_id: UUID, task_id: UUID) -> TaskPhase | None:
        """The phase recorded for one of the prompt's generation tasks."""
        ...

    async def save_task_phase(
        self, prompt_id: UUID, task_id: UUID, phase: TaskPhase, now: datetime
    ) -> None: ...


class UnitOfWork(Protocol):
    """One transaction: `async with uow:` ... `await uow.commit()`; leaving without a commit
    rolls back, and messages emitted inside are published only if it commits."""

    @property
    def prompts(self) -> PromptRepository: ...

    async def __aenter__(self) -> Self: ...

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None: ...

    async def commit(self) -> None: ...

    async def emit(self, subject: str, payload: BaseModel, message_id: UUID) -> None: ...

    async def claim(self, consumer: str, message_id: str) -> bool:
        """Record that `consumer` applies `message_id` here; False if it already did."""
        ...


UnitOfWorkFactory = Callable[[], UnitOfWork]


@dataclass(frozen=True)
class Dependencies:
    """What the entry points hand to the handlers; built by `bootstrap`."""

    uow: UnitOfWorkFactory
    clock: Clock
