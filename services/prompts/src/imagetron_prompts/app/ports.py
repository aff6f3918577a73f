"""What the handlers need from the outside world, as protocols the adapters implement."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import Generic, Literal, Protocol, TypeVar
from uuid import UUID

from pydantic import BaseModel

from imagetron_contracts.models.prompts import PromptStatus
from imagetron_platform.pagination import PageKey
from imagetron_platform.ports import Transactional
from imagetron_prompts.domain.chat import Chat, ChatMessage
from imagetron_prompts.domain.prompt import Prompt, TaskPhase
from imagetron_prompts.domain.usage import TokenUsage

AnswerT = TypeVar("AnswerT", bound=BaseModel)


@dataclass(frozen=True)
class PromptFilter:
    """Narrows a prompt listing; every field set must hold."""

    status: PromptStatus | None = None
    chat_id: UUID | None = None
    #: Case-insensitive substring of the text or the title.
    text: str | None = None


class PromptRepository(Protocol):
    async def add(self, prompt: Prompt) -> bool:
        """False, and nothing added, when a prompt with its id exists (a request sent again
        names the same prompt: `imagetron_platform.request_ids`)."""
        ...

    async def get(
        self, owner_id: UUID, prompt_id: UUID, *, for_update: bool = False
    ) -> Prompt | None:
        """The owner's prompt, or None (also when another owner has it). `for_update` locks
        it until the unit of work ends."""
        ...

    async def save(self, prompt: Prompt) -> None:
        """Write back a prompt read in this unit of work."""
        ...

    async def delete(self, prompt: Prompt) -> None:
        """Remove a prompt read in this unit of work (and its task phases), and remember
        its id as deleted at its `updated_at` (`was_deleted`)."""
        ...

    async def was_deleted(self, owner_id: UUID, prompt_id: UUID) -> bool:
        """Whether the owner's prompt with this id was deleted (and not forgotten since)."""
        ...

    async def forget_deleted(self, before: datetime, limit: int) -> int:
        """Forget up to `limit` prompts deleted before `before`; how many."""
        ...

    async def list_page(
        self,
        owner_id: UUID,
        *,
        limit: int,
        after: PageKey | None,
        where: PromptFilter | None = None,
    ) -> Sequence[Prompt]:
        """Up to `limit` of the owner's prompts matching `where`, newest first, strictly
        after `after`."""
        ...

    async def linked_to_chat(self, owner_id: UUID, chat_id: UUID) -> Sequence[Prompt]:
        """Every prompt of the owner generated in `chat_id`, locked for update."""
        ...

    async def task_phase(self, prompt_id: UUID, task_id: UUID) -> TaskPhase | None:
        """The phase recorded for one of the prompt's generation tasks."""
        ...

    async def task_version(self, prompt_id: UUID, task_id: UUID) -> int:
        """The newest version of the task whose event changed its phase (0: none yet)."""
        ...

    async def save_task_phase(
        self, prompt_id: UUID, task_id: UUID, phase: TaskPhase, now: datetime, version: int = 0
    ) -> None:
        """Record the task's phase (and the version of the event that set it; the newest
        version seen is kept)."""
        ...

    async def reservations_before(
        self, moment: datetime, limit: int
    ) -> Sequence[tuple[UUID, UUID, UUID]]:
        """Up to `limit` reservations made before `moment` whose task never showed up:
        (owner_id, prompt_id, task_id), oldest first."""
        ...


class ChatRepository(Protocol):
    async def add(self, chat: Chat) -> None:
        """Store a new chat and the messages it holds."""
        ...

    async def get(
        self, owner_id: UUID, chat_id: UUID, *, for_update: bool = False, messages: bool = True
    ) -> Chat | None:
        """The owner's chat (None otherwise), with its messages in order unless
        `messages=False`. `for_update` locks the chat row until the unit of work ends."""
        ...

    async def add_messages(self, chat: Chat, messages: Sequence[ChatMessage]) -> None:
        """Append new messages and write back the chat's counters."""
        ...

    async def delete(self, chat: Chat) -> None:
        """Remove a chat and its messages."""
        ...

    async def list_page(
        self, owner_id: UUID, *, limit: int, after: PageKey | None
    ) -> Sequence[Chat]:
        """Up to `limit` of the owner's chats (without messages), newest first."""
        ...


class LlmPurpose(StrEnum):
    CHAT_START = "chat_start"
    CHAT_CONTINUE = "chat_continue"
    GENERATE_PROMPTS = "generate_prompts"
    RETITLE = "retitle"
    STOCK_METADATA = "stock_metadata"


class LlmOutcome(StrEnum):
    """How a call to the language model ended; every value but `ok` is an error."""

    OK = "ok"
    MALFORMED = "malformed"
    """Answers that were not JSON, did not match the schema, or broke a rule of ours."""
    REFUSED = "refused"
    """The model refused (or its content filter stopped it)."""
    TRUNCATED = "truncated"
    """The answer was cut off at the token limit."""
    RATE_LIMITED = "rate_limited"
    """HTTP 429, still after the client's retries."""
    UPSTREAM_ERROR = "upstream_error"
    """HTTP 5xx (or 408/409), still after the client's retries."""
    UNREACHABLE = "unreachable"
    """No connection to the server."""
    REJECTED = "rejected"
    """The server refused our request (400, 401, 403, 404, 422): a configuration error."""
    TIMEOUT = "timeout"
    """No usable answer in time."""


@dataclass(frozen=True)
class LlmCall:
    """One ledger entry: what a use case's call to the language model cost, and how it
    ended. Written with the result it produced, or on its own when it failed."""

    id: UUID
    owner_id: UUID
    purpose: LlmPurpose
    outcome: LlmOutcome
    usage: TokenUsage
    created_at: datetime
    chat_id: UUID | None = None
    prompt_id: UUID | None = None
    detail: str | None = None


class LlmCallRepository(Protocol):
    async def add(self, call: LlmCall) -> bool:
        """False, and nothing added, when an entry with its id exists: the call of a request
        sent again (`imagetron_platform.request_ids`) was recorded with what it created."""
        ...

    async def get(self, owner_id: UUID, call_id: UUID) -> LlmCall | None: ...


class UnitOfWork(Transactional, Protocol):
    """The prompts service's transaction and the repositories it opens."""

    @property
    def prompts(self) -> PromptRepository: ...

    @property
    def chats(self) -> ChatRepository: ...

    @property
    def llm_calls(self) -> LlmCallRepository: ...


UnitOfWorkFactory = Callable[[], UnitOfWork]


@dataclass(frozen=True)
class LlmMessage:
    role: Literal["system", "user", "assistant"]
    content: str


@dataclass(frozen=True)
class LlmAnswer(Generic[AnswerT]):
    value: AnswerT
    usage: TokenUsage


class LlmError(Exception):
    """No usable answer. `usage` is what the attempts cost all the same."""

    def __init__(self, outcome: LlmOutcome, detail: str, usage: TokenUsage) -> None:
        super().__init__(f"{outcome.value}: {detail}")
        self.outcome = outcome
        self.detail = detail
        self.usage = usage


class LlmPort(Protocol):
    """A chat-completion model that answers with JSON of a given shape."""

    @property
    def model(self) -> str: ...

    async def answer(
        self,
        messages: Sequence[LlmMessage],
        answer_type: type[AnswerT],
        *,
        check: Callable[[AnswerT], None] | None = None,
    ) -> LlmAnswer[AnswerT]:
        """The model's answer to `messages`, parsed and validated as `answer_type` (whose
        JSON schema is the requested response format) and accepted by `check` (which raises
        ValueError to reject it). Malformed, refused and rejected answers are asked for
        again a bounded number of times; then, or on a transport failure or timeout, it
        raises LlmError. Never returns a partly valid answer."""
        ...
