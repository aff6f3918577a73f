"""The prompts service's ledger of generations, over request/reply."""

from __future__ import annotations

from uuid import UUID

from imagetron_contracts.models.prompts import GenerationReservation, Prompt
from imagetron_contracts.streams import (
    RPC_PROMPTS_GENERATION_RELEASE,
    RPC_PROMPTS_GENERATION_RESERVE,
)
from imagetron_platform.rpc import RpcClient


class RpcPromptLedger:
    """The `PromptLedger` port: `rpc.prompts.generation.{reserve,release}`. The prompts
    service's problems (404, 409, 503, 504) come back as the same exceptions."""

    def __init__(self, rpc: RpcClient) -> None:
        self._rpc = rpc

    async def reserve(self, owner_id: UUID, prompt_id: UUID, task_id: UUID) -> None:
        await self._call(RPC_PROMPTS_GENERATION_RESERVE, owner_id, prompt_id, task_id)

    async def release(self, owner_id: UUID, prompt_id: UUID, task_id: UUID) -> None:
        await self._call(RPC_PROMPTS_GENERATION_RELEASE, owner_id, prompt_id, task_id)

    async def _call(self, subject: str, owner_id: UUID, prompt_id: UUID, task_id: UUID) -> None:
        request = GenerationReservation(owner_id=owner_id, prompt_id=prompt_id, task_id=task_id)
        await self._rpc.call(subject, request, Prompt)
