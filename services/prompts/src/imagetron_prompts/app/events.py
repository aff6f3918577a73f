"""The prompt as the contracts show it, and the events announcing its changes."""

from __future__ import annotations

from datetime import datetime
from uuid import UUID, uuid4

from imagetron_contracts.models import prompts as contract
from imagetron_contracts.models.prompts import Type as PromptEventType

from imagetron_prompts.app.ports import UnitOfWork
from imagetron_prompts.domain.prompt import Prompt

__all__ = ["PromptEventType", "emit_prompt_event", "prompt_event_subject", "to_contract"]


def to_contract(prompt: Prompt) -> contract.Prompt:
    return contract.Prompt(
        id=prompt.id,
        owner_id=prompt.owner_id,
        text=prompt.text,
        title=prompt.title,
        status=prompt.status,
        generation_state=prompt.generation_state,
        active_tasks=prompt.active_tasks,
        completed_tasks=prompt.completed_tasks,
        failed_tasks=prompt.failed_tasks,
        created_at=prompt.created_at,
        updated_at=prompt.updated_at,
    )


def prompt_event_subject(owner_id: UUID, event_type: PromptEventType) -> str:
    """`events.prompts.<owner_id>.prompt.<created|updated>` (asyncapi `events_prompts_prompt`)."""
    return f"events.prompts.{owner_id}.{event_type.value}"


async def emit_prompt_event(
    uow: UnitOfWork, prompt: Prompt, event_type: PromptEventType, now: datetime
) -> contract.PromptEvent:
    """Queue the event in the unit of work's outbox; it is published once the work commits."""
    event = contract.PromptEvent(
        id=uuid4(),
        type=event_type,
        occurred_at=now,
        owner_id=prompt.owner_id,
        prompt=to_contract(prompt),
    )
    await uow.emit(prompt_event_subject(prompt.owner_id, event_type), event, event.id)
    return event
