"""A subject chat: the artist's brief and refinements, and the assistant's proposed subjects.

A chat always holds complete exchanges: it is created with the brief and the assistant's
first answer together, and each refinement adds the artist's message and the answer together
(positions 0, 1, 2, ...). An exchange whose answer could not be obtained leaves no trace.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import datetime
from uuid import UUID, uuid4

from imagetron_contracts.models.chats import ChatRole
from imagetron_contracts.models.common import FieldError
from imagetron_platform.errors import InvalidRequest
from imagetron_prompts.domain.usage import TokenUsage

MAX_MESSAGE_LENGTH = 2000
MAX_SUBJECTS = 20
MAX_SUBJECT_LENGTH = 300
MAX_REPLY_LENGTH = 2000
TITLE_LENGTH = 80

_SPACES = re.compile(r"\s+")


def clean_message(text: str, loc: str) -> str:
    """The artist's message without surrounding whitespace; 422 when blank or too long."""
    text = text.strip()
    if not text:
        raise InvalidRequest(
            f"The {loc} must not be empty.",
            errors=[FieldError(loc=[loc], msg="Must not be empty.")],
        )
    if len(text) > MAX_MESSAGE_LENGTH:
        raise InvalidRequest(
            f"The {loc} is longer than {MAX_MESSAGE_LENGTH} characters.",
            errors=[FieldError(loc=[loc], msg=f"At most {MAX_MESSAGE_LENGTH} characters.")],
        )
    return text


def title_from_brief(brief: str) -> str:
    """The chat's name: the brief's first line, cut at a word within TITLE_LENGTH."""
    first_line = _SPACES.sub(" ", brief.strip().splitlines()[0] if brief.strip() else "").strip()
    if len(first_line) <= TITLE_LENGTH:
        return first_line
    cut = first_line[: TITLE_LENGTH - 1]
    if " " in cut:
        cut = cut.rsplit(" ", 1)[0]
    return cut.rstrip(" ,;:.-") + "…"


def normalize_subjects(subjects: list[str]) -> tuple[str, ...]:
    """Whitespace collapsed, blanks and case-insensitive repeats dropped, order kept."""
    seen: set[str] = set()
    kept: list[str] = []
    for subject in subjects:
        text = _SPACES.sub(" ", subject).strip()
        key = text.casefold()
        if text and key not in seen:
            seen.add(key)
            kept.append(text)
    return tuple(kept)


@dataclass(slots=True)
class ChatMessage:
    id: UUID
    chat_id: UUID
    position: int
    role: ChatRole
    content: str
    created_at: datetime
    subjects: tuple[str, ...] = ()
    #: The language-model call that wrote an assistant message (its ledger row and usage).
    llm_call_id: UUID | None = None
    usage: TokenUsage | None = None


@dataclass(slots=True)
class Chat:
    id: UUID
    owner_id: UUID
    title: str
    message_count: int
    created_at: datetime
    updated_at: datetime
    messages: list[ChatMessage] = field(default_factory=list)
    #: Increases with every announced change (its events carry it); 1 once it has messages.
    version: int = 0

    def delete(self, now: datetime) -> None:
        """It goes (its `chat.deleted` carries the next version)."""
        self.updated_at = now
        self.version += 1

    @classmethod
    def start(
        cls, *, owner_id: UUID, brief: str, now: datetime, chat_id: UUID | None = None
    ) -> Chat:
        """An empty chat named after the brief, with `chat_id` or a new id; `add_exchange`
        gives it its first messages."""
        brief = clean_message(brief, "brief")
        return cls(
            id=chat_id or uuid4(),
            owner_id=owner_id,
            title=title_from_brief(brief),
            message_count=0,
            created_at=now,
            updated_at=now,
        )

    def add_exchange(
        self,
        *,
        user_text: str,
        reply: str,
        subjects: tuple[str, ...],
        now: datetime,
        llm_call_id: UUID,
        usage: TokenUsage,
    ) -> tuple[ChatMessage, ChatMessage]:
        """Append the artist's message and the assistant's answer; returns both."""
        asked = ChatMessage(
            id=uuid4(),
            chat_id=self.id,
            position=self.message_count,
            role=ChatRole.user,
            content=user_text,
            created_at=now,
        )
        answered = ChatMessage(
            id=uuid4(),
            chat_id=self.id,
            position=self.message_count + 1,
            role=ChatRole.assistant,
            content=reply,
            created_at=now,
            subjects=subjects,
            llm_call_id=llm_call_id,
            usage=usage,
        )
        self.messages += [asked, answered]
        self.message_count += 2
        self.updated_at = now
        self.version += 1
        return asked, answered
