from __future__ import annotations

from dataclasses import dataclass

from imagetron_platform.clock import Clock
from imagetron_prompts.app.ports import LlmPort, UnitOfWorkFactory


@dataclass(frozen=True, kw_only=True)
class Dependencies:
    """The adapters behind the ports: built once by bootstrap, shared by every handler."""

    # A fresh unit of work per message: one holds one session and cannot be shared by
    # handlers running concurrently.
    new_uow: UnitOfWorkFactory
    clock: Clock
    llm: LlmPort
