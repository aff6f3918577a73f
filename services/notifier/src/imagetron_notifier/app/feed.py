"""What a browser's event stream is made of, independent of where events are kept."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Protocol
from uuid import UUID


@dataclass(frozen=True)
class FeedEvent:
    """One domain event: `seq` is its sequence in the EVENTS stream (the SSE id)."""

    seq: int
    type: str
    data: str  # the JSON payload exactly as published


@dataclass(frozen=True)
class FeedReset:
    """The client asked to resume from an event that is no longer kept: it must reload its
    state; the feed continues with what happens from now on."""

    requested_after: int
    oldest_kept: int


FeedItem = FeedEvent | FeedReset


class EventFeed(Protocol):
    def follow(self, owner_id: UUID, after_seq: int | None) -> AsyncIterator[FeedItem]:
        """The owner's events after `after_seq` (None: only new ones), then live, in order."""
        ...


def event_type_of(subject: str) -> str:
    """`events.<service>.<owner>.<family>.<name>` → `<family>.<name>` (e.g. task.completed)."""
    parts = subject.split(".", 3)
    if len(parts) != 4 or parts[0] != "events":
        raise ValueError(f"not an event subject: {subject!r}")
    return parts[3]
