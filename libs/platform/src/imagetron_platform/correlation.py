"""One correlation id per unit of work, from the HTTP request through NATS headers.

The context variable is asgi-correlation-id's own, so its middleware sets it for HTTP; the
FastStream middleware in `messaging` sets it for every consumed message and stamps it on
every published one.
"""

from __future__ import annotations

from uuid import uuid4

from asgi_correlation_id.context import correlation_id

HEADER = "X-Request-ID"


def current() -> str | None:
    return correlation_id.get()


def current_or_new() -> str:
    value = correlation_id.get()
    if value is None:
        value = uuid4().hex
        correlation_id.set(value)
    return value


def bind(value: str | None) -> None:
    correlation_id.set(value)
