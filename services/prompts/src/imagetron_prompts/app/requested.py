"""What a request sent again (its first answer lost: 503/504 at the gateway) names: the
ids of what it creates derive from its `request_id` (`imagetron_platform.request_ids`), so
it answers what the first attempt created instead of creating it again.

Creates that ask the language model (a chat, its next exchange, generated prompts) write
the call's ledger entry, under an id the request names, in the transaction of what it
paid for: an entry with that id says the request was done, so the model is not asked
again, and a second insert of it (two attempts at once) adds nothing and tells the later
attempt to answer what the first recorded."""

from __future__ import annotations

from dataclasses import replace
from uuid import UUID

from imagetron_platform.request_ids import id_for
from imagetron_prompts.app.ports import LlmCall, UnitOfWorkFactory

#: The namespaces of ids named by a request, one per kind of thing.
REQUESTED_PROMPTS = UUID("3c8d6f0a-52b1-4e7a-9c1d-8b2e4f6a0d13")
REQUESTED_CHATS = UUID("a41e7b92-0c6d-4f35-8e2a-71d9c3b5f608")
REQUESTED_LLM_CALLS = UUID("5e9f2c47-b813-4d6a-a0e5-c2f7d14b8396")


def prompt_id_for(owner_id: UUID, request_id: str | None, *parts: object) -> UUID:
    """The id of the prompt (the `parts`th of several) that the request creates."""
    return id_for(REQUESTED_PROMPTS, owner_id, request_id, *parts)


def chat_id_for(owner_id: UUID, request_id: str | None) -> UUID:
    return id_for(REQUESTED_CHATS, owner_id, request_id)


def llm_call_id_for(owner_id: UUID, request_id: str | None) -> UUID:
    """The id of the ledger entry of the request's (successful) language-model call."""
    return id_for(REQUESTED_LLM_CALLS, owner_id, request_id)


def requested_call(call: LlmCall, request_id: str | None) -> LlmCall:
    """The ledger entry of the request's call under the id the request names (as it is
    without a request id)."""
    return replace(call, id=llm_call_id_for(call.owner_id, request_id)) if request_id else call


async def recorded_call(
    new_uow: UnitOfWorkFactory, owner_id: UUID, request_id: str | None
) -> LlmCall | None:
    """The ledger entry the request's first attempt wrote with what it created; None the
    first time (or without a request id)."""
    if not request_id:
        return None
    async with new_uow() as uow:
        return await uow.llm_calls.get(owner_id, llm_call_id_for(owner_id, request_id))
