"""Prompts: forwarded to the prompts service; imagine also to the images service.

Operation ids, paths, parameters and models follow `contracts/openapi.yaml`; a contract
test compares the generated OpenAPI with the document."""

from __future__ import annotations

from typing import Annotated
from uuid import UUID

from fastapi import APIRouter, Body

from imagetron_contracts import streams
from imagetron_contracts.models.images import (
    ImagineCommand,
    ImagineRequest,
    Task,
)
from imagetron_contracts.models.prompts import (
    CreatePromptCommand,
    CreatePromptRequest,
    ListPromptsQuery,
    Prompt,
    PromptPage,
    PromptQuery,
)
from imagetron_gateway.entrypoints.http.deps import Context, CurrentUser
from imagetron_gateway.entrypoints.http.params import Cursor, Limit
from imagetron_gateway.entrypoints.http.problems import FORWARDED, problems

router = APIRouter(prefix="/api/v1")


@router.post(
    "/prompts",
    status_code=201,
    operation_id="createPrompt",
    responses=problems(*FORWARDED),
    tags=["prompts"],
)
async def create_prompt(body: CreatePromptRequest, caller: CurrentUser, ctx: Context) -> Prompt:
    command = CreatePromptCommand(owner_id=caller.id, text=body.text, title=body.title)
    return await ctx.rpc.call(streams.RPC_PROMPTS_CREATE, command, Prompt)


@router.get(
    "/prompts", operation_id="listPrompts", responses=problems(*FORWARDED), tags=["prompts"]
)
async def list_prompts(
    caller: CurrentUser, ctx: Context, limit: Limit = 50, cursor: Cursor = None
) -> PromptPage:
    query = ListPromptsQuery(owner_id=caller.id, limit=limit, cursor=cursor)
    return await ctx.rpc.call(streams.RPC_PROMPTS_LIST, query, PromptPage)


@router.get(
    "/prompts/{prompt_id}",
    operation_id="getPrompt",
    responses=problems(401, 404, 422, 503, 504),
    tags=["prompts"],
)
async def get_prompt(prompt_id: UUID, caller: CurrentUser, ctx: Context) -> Prompt:
    query = PromptQuery(owner_id=caller.id, prompt_id=prompt_id)
    return await ctx.rpc.call(streams.RPC_PROMPTS_GET, query, Prompt)


@router.post(
    "/prompts/{prompt_id}/imagine",
    status_code=202,
    operation_id="imaginePrompt",
    responses=problems(401, 404, 409, 422, 503, 504),
    tags=["prompts", "tasks"],
)
async def imagine_prompt(
    prompt_id: UUID,
    caller: CurrentUser,
    ctx: Context,
    body: Annotated[ImagineRequest | None, Body()] = None,
) -> Task:
    # The prompts service decides whether the prompt may be rendered (404, 409 archived)
    # and hands back its text; the images service owns the task from there on.
    prompt = await ctx.rpc.call(
        streams.RPC_PROMPTS_PREPARE_GENERATION,
        PromptQuery(owner_id=caller.id, prompt_id=prompt_id),
        Prompt,
    )
    options = body or ImagineRequest()
    command = ImagineCommand(
        owner_id=caller.id,
        prompt_id=prompt.id,
        prompt_text=prompt.text,
        aspect_ratio=options.aspect_ratio,
        process_mode=options.process_mode,
    )
    return await ctx.rpc.call(streams.RPC_IMAGES_IMAGINE, command, Task)
