"""One correlation id per unit of work, from the HTTP request through NATS headers.

The context variable is asgi-correlation-id's own, so its middleware sets it for HTTP; the
FastStream middleware in `messaging` sets it for every consumed message and stamps it on
every published one.
"""

from __future__ import annotations

from asgi_correlation_id.context import correlation_id


def current() -> str | None:
    return correlation_id.get()


def bind(value: str | None) -> None:
    correlation_id.set(value)
