"""The one clock: aware UTC time. Handlers that must be testable at a chosen time take a
`Clock` (a dependency); the rest call `utcnow`."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime

Clock = Callable[[], datetime]


def utcnow() -> datetime:
    return datetime.now(UTC)
