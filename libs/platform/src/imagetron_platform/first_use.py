"""Adapters built the first time they are used, for the libraries too heavy to import at
every start when most starts never use them.

The `openai` SDK is the case in point: its import is 0.6-0.7 s of CPU (hundreds of pydantic
models), a fifth of what the fork server imports for all six of our processes, while the
prompts service needs it only when someone talks to the language model and the images
service only when OpenAI Images is the provider. Built on first use, that first use pays the
import once per process, in a worker thread so that the event loop keeps serving meanwhile
(acks, heartbeats, `/livez`).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Generic, TypeVar

T = TypeVar("T")


class OnFirstUse(Generic[T]):
    """`build()` run once, in a worker thread, the first time the value is asked for; every
    caller waiting meanwhile gets the same value. A build that raises is tried again by the
    next caller."""

    def __init__(self, build: Callable[[], T]) -> None:
        self._build = build
        self._built: list[T] = []  # the value, once built
        self._lock: asyncio.Lock | None = None

    async def get(self) -> T:
        if not self._built:
            if self._lock is None:
                self._lock = asyncio.Lock()
            async with self._lock:
                if not self._built:
                    self._built.append(await asyncio.to_thread(self._build))
        return self._built[0]

    @property
    def built(self) -> T | None:
        """The value if it has been built (to close it at shutdown), else None."""
        return self._built[0] if self._built else None
