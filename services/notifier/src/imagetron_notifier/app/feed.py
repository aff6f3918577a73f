"""What a browser's event stream is made of, independent of where events are kept."""

from __future__ import annotations

import json
from collections.abc import AsyncGenerator
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Protocol
from uuid import UUID


@dataclass(frozen=True)
class FeedEvent:
    """One domain event: `seq` is its sequence in the EVENTS stream (the SSE id)."""

    seq: int
    owner_id: UUID
    type: str
    data: str  # the JSON payload exactly as published
    #: The SSE frame, encoded once and written to every connection of the owner.
    frame: bytes = b""
    #: When the event happened (unix seconds), for the delivery-lag metric.
    occurred_at: float | None = None

    @classmethod
    def of(cls, seq: int, owner_id: UUID, type: str, data: str) -> FeedEvent:
        return cls(
            seq, owner_id, type, data, sse_frame(data, event=type, id=str(seq)), _occurred(data)
        )


def _occurred(data: str) -> float | None:
    try:
        return datetime.fromisoformat(json.loads(data)["occurred_at"]).timestamp()
    except (ValueError, KeyError, TypeError):
        return None


@dataclass(frozen=True)
class Heartbeat:
    """Nothing happened for a while: a comment keeps proxies from closing the connection."""


@dataclass(frozen=True)
class FeedReset:
    """The client asked to resume from an event that is no longer kept: it must reload its
    state; the feed continues with what happens from now on."""

    requested_after: int
    oldest_kept: int


FeedItem = FeedEvent | FeedReset | Heartbeat


def sse_frame(
    data: str | None = None,
    *,
    event: str | None = None,
    id: str | None = None,
    retry_ms: int | None = None,
    comment: str | None = None,
) -> bytes:
    """One Server-Sent Events frame (WHATWG HTML, "Interpreting an event stream")."""
    lines = []
    if comment is not None:
        lines.append(f": {comment}")
    if id is not None:
        lines.append(f"id: {id}")
    if event is not None:
        lines.append(f"event: {event}")
    if retry_ms is not None:
        lines.append(f"retry: {retry_ms}")
    if data is not None:
        lines.extend(f"data: {line}" for line in data.splitlines() or [""])
    return ("\n".join(lines) + "\n\n").encode()


class EventFeed(Protocol):
    def follow(self, owner_id: UUID, after_seq: int | None) -> AsyncGenerator[FeedItem, None]:
        """The owner's events after `after_seq` (None: only new ones), then live, in order,
        each once, with a Heartbeat now and then while nothing happens."""
        ...


def parse_event_subject(subject: str) -> tuple[UUID, str]:
    """`events.<service>.<owner>.<family>.<name>` → (owner, `<family>.<name>`)."""
    parts = subject.split(".", 3)
    if len(parts) != 4 or parts[0] != "events":
        raise ValueError(f"not an event subject: {subject!r}")
    return UUID(parts[2]), parts[3]


@dataclass(frozen=True)
class EventFilter:
    """Narrows a stream to what one page shows. Empty: everything of the owner."""

    types: frozenset[str] = frozenset()
    task_id: UUID | None = None
    prompt_id: UUID | None = None

    @property
    def is_open(self) -> bool:
        return not self.types and self.task_id is None and self.prompt_id is None

    def matches(self, event: FeedEvent) -> bool:
        if self.is_open:
            return True
        if self.types and event.type not in self.types:
            return False
        if self.task_id is None and self.prompt_id is None:
            return True
        try:
            data: dict[str, Any] = json.loads(event.data)
        except ValueError:
            return False
        task_ids, prompt_ids = _ids(data)
        return (self.task_id is None or str(self.task_id) in task_ids) and (
            self.prompt_id is None or str(self.prompt_id) in prompt_ids
        )


def _ids(data: dict[str, Any]) -> tuple[set[str], set[str]]:
    """The task and prompt ids an event is about, whatever its family."""
    tasks: set[str] = set()
    prompts: set[str] = set()
    for key in ("task", "image", "prompt"):
        entity = data.get(key)
        if not isinstance(entity, dict):
            continue
        if key == "task":
            tasks.add(str(entity.get("id")))
        elif key == "image":
            tasks.add(str(entity.get("task_id")))
        else:
            prompts.add(str(entity.get("id")))
        if entity.get("prompt_id") is not None:
            prompts.add(str(entity["prompt_id"]))
    return tasks, prompts
