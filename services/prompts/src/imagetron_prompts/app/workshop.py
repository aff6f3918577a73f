"""Prompts, titles and stock metadata written by the language model.

Like the chats, each asks the model with no transaction open and writes everything in one
transaction once the whole answer validated: N prompts or none, a new title or the old one.
Stock metadata is only suggested (the publisher keeps it): its transaction is the ledger's.
"""

from __future__ import annotations

from datetime import datetime

from imagetron_contracts.models import prompts as contract
from imagetron_contracts.models.common import FieldError
from imagetron_contracts.models.prompts import PromptEventType
from imagetron_platform.clock import Clock
from imagetron_platform.errors import InvalidRequest, NotFound
from imagetron_prompts.app.assistant import (
    StockMetadataIdeas,
    TitleIdeas,
    ask,
    check_prompt_drafts,
    clean_keywords,
    ledger_entry,
    metadata_conversation,
    prompt_drafts_for,
    prompts_conversation,
    title_conversation,
    title_picker,
)
from imagetron_prompts.app.messages import emit_prompt_event
from imagetron_prompts.app.ports import LlmPort, LlmPurpose, UnitOfWork, UnitOfWorkFactory
from imagetron_prompts.app.prompts import owned_prompt
from imagetron_prompts.app.requested import (
    llm_call_id_for,
    prompt_id_for,
    recorded_call,
    requested_call,
)
from imagetron_prompts.app.views import prompt_view, usage_view
from imagetron_prompts.domain.midjourney import ASPECT_RATIO, PromptDraft
from imagetron_prompts.domain.prompt import Prompt

MAX_SUBJECT_LENGTH = 500
MAX_STYLE_LENGTH = 200
MAX_COUNT = 10
DEFAULT_COUNT = 4
DEFAULT_ASPECT_RATIO = "1:1"


def _validated(cmd: contract.GeneratePromptsCommand) -> tuple[str, int, str | None, str]:
    errors: list[FieldError] = []
    subject = cmd.subject.strip()
    if not subject or len(subject) > MAX_SUBJECT_LENGTH:
        errors.append(
            FieldError(loc=["subject"], msg=f"Between 1 and {MAX_SUBJECT_LENGTH} characters.")
        )
    count = cmd.count if cmd.count is not None else DEFAULT_COUNT
    if not 1 <= count <= MAX_COUNT:
        errors.append(FieldError(loc=["count"], msg=f"Between 1 and {MAX_COUNT}."))
    style = (cmd.style or "").strip() or None
    if style is not None and len(style) > MAX_STYLE_LENGTH:
        errors.append(FieldError(loc=["style"], msg=f"At most {MAX_STYLE_LENGTH} characters."))
    aspect_ratio = cmd.aspect_ratio or DEFAULT_ASPECT_RATIO
    if not ASPECT_RATIO.match(aspect_ratio):
        errors.append(FieldError(loc=["aspect_ratio"], msg="Like 16:9."))
    if errors:
        raise InvalidRequest("; ".join(f"{e.loc[0]}: {e.msg}" for e in errors), errors=errors)
    return subject, count, style, aspect_ratio


async def generate_prompts(
    cmd: contract.GeneratePromptsCommand, new_uow: UnitOfWorkFactory, llm: LlmPort, clock: Clock
) -> contract.GeneratedPrompts:
    """Store `count` Midjourney prompts for a subject, each with a stock-ready title, linked
    to the chat when one is named (404 if the owner has no such chat). Sent again with its
    `request_id`, the prompts the first attempt created (those not deleted since), without
    asking the model again."""
    subject, count, style, aspect_ratio = _validated(cmd)
    if await recorded_call(new_uow, cmd.owner_id, cmd.request_id):
        return await _generated_before(cmd, count, new_uow)
    if cmd.chat_id is not None:
        async with new_uow() as uow:
            if await uow.chats.get(cmd.owner_id, cmd.chat_id, messages=False) is None:
                raise NotFound(f"Chat {cmd.chat_id} does not exist.")
    answer = await ask(
        llm,
        new_uow,
        clock,
        purpose=LlmPurpose.GENERATE_PROMPTS,
        owner_id=cmd.owner_id,
        messages=prompts_conversation(subject, count, style),
        answer_type=prompt_drafts_for(count),
        check=check_prompt_drafts,
        chat_id=cmd.chat_id,
    )
    call = ledger_entry(
        answer,
        clock,
        purpose=LlmPurpose.GENERATE_PROMPTS,
        owner_id=cmd.owner_id,
        chat_id=cmd.chat_id,
    )
    call = requested_call(call, cmd.request_id)
    async with new_uow() as uow:
        if cmd.chat_id is not None:
            # Locked: the chat cannot be deleted between this check and the commit.
            chat = await uow.chats.get(cmd.owner_id, cmd.chat_id, for_update=True, messages=False)
            if chat is None:
                raise NotFound(f"Chat {cmd.chat_id} was deleted meanwhile.")
        added = await uow.llm_calls.add(call)
        if added:
            now = clock()
            created = [
                await _add_prompt(uow, cmd, index, parts.draft(), aspect_ratio, now)
                for index, parts in enumerate(answer.value.prompts)
            ]
            await uow.commit()
    if not added:  # another attempt at the same request recorded it meanwhile
        return await _generated_before(cmd, count, new_uow)
    return contract.GeneratedPrompts(
        prompts=[prompt_view(p) for p in created], usage=usage_view(answer.usage)
    )


async def _add_prompt(
    uow: UnitOfWork,
    cmd: contract.GeneratePromptsCommand,
    index: int,
    draft: PromptDraft,
    aspect_ratio: str,
    now: datetime,
) -> Prompt:
    prompt = Prompt.create(
        owner_id=cmd.owner_id,
        text=draft.text(aspect_ratio),
        title=draft.clean_title,
        now=now,
        chat_id=cmd.chat_id,
        prompt_id=prompt_id_for(cmd.owner_id, cmd.request_id, index),
    )
    await uow.prompts.add(prompt)
    await emit_prompt_event(uow, prompt, PromptEventType.prompt_created, now)
    return prompt


async def _generated_before(
    cmd: contract.GeneratePromptsCommand, count: int, new_uow: UnitOfWorkFactory
) -> contract.GeneratedPrompts:
    """What the request's first attempt answered: its prompts (those still there) and the
    usage its ledger entry recorded."""
    async with new_uow() as uow:
        call = await uow.llm_calls.get(cmd.owner_id, llm_call_id_for(cmd.owner_id, cmd.request_id))
        ids = [prompt_id_for(cmd.owner_id, cmd.request_id, index) for index in range(count)]
        found = [await uow.prompts.get(cmd.owner_id, prompt_id) for prompt_id in ids]
    if call is None:  # cannot happen: the ledger keeps its entries
        raise NotFound("The generation this request made is not recorded.")
    return contract.GeneratedPrompts(
        prompts=[prompt_view(p) for p in found if p is not None], usage=usage_view(call.usage)
    )


async def retitle_prompt(
    query: contract.PromptQuery, new_uow: UnitOfWorkFactory, llm: LlmPort, clock: Clock
) -> contract.Prompt:
    """Give the prompt a different stock-ready title from the model; `prompt.updated`."""
    async with new_uow() as uow:
        prompt = await owned_prompt(uow, query.owner_id, query.prompt_id)
    check, pick = title_picker(prompt.title)
    answer = await ask(
        llm,
        new_uow,
        clock,
        purpose=LlmPurpose.RETITLE,
        owner_id=query.owner_id,
        messages=title_conversation(prompt.text, prompt.title),
        answer_type=TitleIdeas,
        check=check,
        prompt_id=prompt.id,
    )
    call = ledger_entry(
        answer, clock, purpose=LlmPurpose.RETITLE, owner_id=query.owner_id, prompt_id=prompt.id
    )
    async with new_uow() as uow:
        prompt = await owned_prompt(uow, query.owner_id, query.prompt_id, for_update=True)
        now = clock()
        prompt.edit(now, title=pick(answer.value))
        await uow.prompts.save(prompt)
        await uow.llm_calls.add(call)
        await emit_prompt_event(uow, prompt, PromptEventType.prompt_updated, now)
        await uow.commit()
    return prompt_view(prompt)


async def suggest_stock_metadata(
    cmd: contract.SuggestStockMetadataCommand,
    new_uow: UnitOfWorkFactory,
    llm: LlmPort,
    clock: Clock,
) -> contract.StockMetadataSuggestion:
    """Title, keywords (most relevant first), category and the photo/people flags for an
    image of this prompt, as the model suggests them; the caller lints and keeps them."""
    if not cmd.prompt_text.strip():
        raise InvalidRequest(
            "There is no prompt text to describe.",
            errors=[FieldError(loc=["prompt_text"], msg="Must not be blank.")],
        )
    answer = await ask(
        llm,
        new_uow,
        clock,
        purpose=LlmPurpose.STOCK_METADATA,
        owner_id=cmd.owner_id,
        messages=metadata_conversation(cmd.prompt_text, cmd.title),
        answer_type=StockMetadataIdeas,
        prompt_id=cmd.prompt_id,
    )
    async with new_uow() as uow:
        await uow.llm_calls.add(
            ledger_entry(
                answer,
                clock,
                purpose=LlmPurpose.STOCK_METADATA,
                owner_id=cmd.owner_id,
                prompt_id=cmd.prompt_id,
            )
        )
        await uow.commit()
    ideas = answer.value
    return contract.StockMetadataSuggestion(
        title=" ".join(ideas.title.split()),
        keywords=clean_keywords(ideas.keywords),
        category=ideas.category,
        photo_realistic=ideas.photo_realistic,
        shows_people_or_property=ideas.shows_people_or_property,
        usage=usage_view(answer.usage),
    )
