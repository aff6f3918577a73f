"""What a request for the event stream carries, defined once for the gateway (which checks
it and proxies it) and the notifier (which serves it): who asks (a bearer credential, or
for `EventSource`, which cannot send headers, a token in the query or a cookie) and which
events (resume after `Last-Event-ID`, only one task's or prompt's, only some types)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated
from uuid import UUID

from fastapi import Header, Query, Request

from imagetron_platform.events_tokens import EVENTS_COOKIE

#: `types=task.completed,image.persisted`: family-qualified event types, comma-separated.
EVENT_TYPES_PATTERN = r"^[a-z_]+\.[a-z_]+(,[a-z_]+\.[a-z_]+)*$"
#: The SSE id is the EVENTS stream's sequence number: unsigned 64-bit, so at most 19 digits.
LAST_EVENT_ID_PATTERN = r"^[0-9]{1,19}$"


def bearer_token(request: Request) -> str | None:
    """The credential of an `Authorization: Bearer …` header, if there is one.

    Read from the request rather than declared as a parameter: the contract documents it
    as a security scheme, not as a header parameter."""
    scheme, _, value = request.headers.get("authorization", "").partition(" ")
    return (value.strip() or None) if scheme.lower() == "bearer" else None


def browser_events_token(request: Request) -> str | None:
    """The events token of a browser's `EventSource`: the `token` query parameter, else the
    cookie `POST /api/v1/events/token` set."""
    return request.query_params.get("token") or request.cookies.get(EVENTS_COOKIE)


@dataclass(frozen=True)
class StreamRequest:
    """Which of the caller's events a stream request wants (a FastAPI dependency)."""

    last_event_id: str | None = None
    task_id: UUID | None = None
    prompt_id: UUID | None = None
    types: str | None = None

    @property
    def after(self) -> int | None:
        """The stream sequence to resume after."""
        return int(self.last_event_id) if self.last_event_id is not None else None

    @property
    def type_set(self) -> frozenset[str]:
        """The wanted event types; empty means all."""
        return frozenset(self.types.split(",")) if self.types else frozenset()

    def query(self) -> dict[str, str]:
        """The filters as query parameters, to pass the request on."""
        filters = {"task_id": self.task_id, "prompt_id": self.prompt_id, "types": self.types}
        return {name: str(value) for name, value in filters.items() if value is not None}


async def stream_request(
    last_event_id: Annotated[
        str | None, Header(alias="Last-Event-ID", pattern=LAST_EVENT_ID_PATTERN)
    ] = None,
    task_id: UUID | None = None,
    prompt_id: UUID | None = None,
    types: Annotated[str | None, Query(pattern=EVENT_TYPES_PATTERN)] = None,
    resume_after: Annotated[
        str | None, Query(alias="last_event_id", pattern=LAST_EVENT_ID_PATTERN)
    ] = None,
) -> StreamRequest:
    # A browser resends the header by itself while its EventSource reconnects; a new
    # EventSource (opened after the old one gave up) can only say where it was in the URL.
    # The header wins when both are sent.
    after = last_event_id if last_event_id is not None else resume_after
    return StreamRequest(after, task_id, prompt_id, types)
