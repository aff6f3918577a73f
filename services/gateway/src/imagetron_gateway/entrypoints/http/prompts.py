"""Prompts: forwarded to the prompts service; imagine also to the images service.

Operation ids, paths, parameters and models follow `contracts/openapi.yaml`; a contract
test compares the generated OpenAPI with the document. Calls that wait for the language
model (generate, retitle) use `llm_rpc_timeout_seconds` instead of the default RPC timeout."""

from __future__ import annotations

from typing import Annotated
from uuid import UUID

from fastapi import APIRouter, Body, Query, Request, Response

from imagetron_contracts import streams
from imagetron_contracts.models.common import FieldError
from imagetron_contracts.models.images import (
    ImagineCommand,
    ImagineRequest,
    RequestedTaskQuery,
    Task,
)
from imagetron_contracts.models.prompts import (
    CreatePromptCommand,
    CreatePromptRequest,
    GeneratedPrompts,
    GeneratePromptsCommand,
    GeneratePromptsRequest,
    ListPromptsQuery,
    Prompt,
    PromptPage,
    PromptQuery,
    PromptStatus,
    SetPromptStatusCommand,
    SetPromptStatusRequest,
    UpdatePromptCommand,
    UpdatePromptRequest,
)
from imagetron_gateway.app.budgets import Spend
from imagetron_gateway.entrypoints.http.deps import Context, CurrentUser
from imagetron_gateway.entrypoints.http.idempotency import IdempotentRoute, RequestId, idempotent
from imagetron_gateway.entrypoints.http.params import Cursor, Limit
from imagetron_gateway.entrypoints.http.problems import forwarded
from imagetron_platform.errors import Conflict, InvalidRequest, NotFound

router = APIRouter(prefix="/api/v1", route_class=IdempotentRoute)


@router.post(
    "/prompts",
    status_code=201,
    operation_id="createPrompt",
    responses=forwarded(410),
    tags=["prompts"],
)
@idempotent
async def create_prompt(
    body: CreatePromptRequest, caller: CurrentUser, ctx: Context, request_id: RequestId
) -> Prompt:
    command = CreatePromptCommand(
        owner_id=caller.id, text=body.text, title=body.title, request_id=request_id
    )
    return await ctx.rpc.call(streams.RPC_PROMPTS_CREATE, command, Prompt)


@router.get("/prompts", operation_id="listPrompts", responses=forwarded(), tags=["prompts"])
async def list_prompts(
    caller: CurrentUser,
    ctx: Context,
    status: PromptStatus | None = None,
    chat_id: UUID | None = None,
    q: Annotated[str | None, Query(min_length=1, max_length=200, pattern=r"^[^\u0000]*$")] = None,
    limit: Limit = 50,
    cursor: Cursor = None,
) -> PromptPage:
    query = ListPromptsQuery(
        owner_id=caller.id, status=status, chat_id=chat_id, q=q, limit=limit, cursor=cursor
    )
    return await ctx.rpc.call(streams.RPC_PROMPTS_LIST, query, PromptPage)


@router.post(
    "/prompts/generate",
    status_code=201,
    operation_id="generatePrompts",
    responses=forwarded(404),
    tags=["prompts"],
)
@idempotent
async def generate_prompts(
    body: GeneratePromptsRequest, caller: CurrentUser, ctx: Context, request_id: RequestId
) -> GeneratedPrompts:
    command = GeneratePromptsCommand(
        owner_id=caller.id,
        subject=body.subject,
        count=body.count,
        style=body.style,
        aspect_ratio=body.aspect_ratio,
        chat_id=body.chat_id,
        request_id=request_id,
    )
    async with ctx.budgets.spending(caller.id, Spend.llm_calls, request_id):
        return await ctx.rpc.call(
            streams.RPC_PROMPTS_GENERATE,
            command,
            GeneratedPrompts,
            timeout=ctx.settings.llm_rpc_timeout_seconds,
        )


@router.get(
    "/prompts/{prompt_id:id}",
    operation_id="getPrompt",
    responses=forwarded(404),
    tags=["prompts"],
)
async def get_prompt(prompt_id: UUID, caller: CurrentUser, ctx: Context) -> Prompt:
    query = PromptQuery(owner_id=caller.id, prompt_id=prompt_id)
    return await ctx.rpc.call(streams.RPC_PROMPTS_GET, query, Prompt)


@router.patch(
    "/prompts/{prompt_id:id}",
    operation_id="updatePrompt",
    responses=forwarded(404),
    tags=["prompts"],
)
async def update_prompt(
    prompt_id: UUID, body: UpdatePromptRequest, caller: CurrentUser, ctx: Context
) -> Prompt:
    sent = body.model_fields_set
    if not sent:
        raise InvalidRequest(
            "Nothing to change: send `text`, `title` or both.",
            errors=[FieldError(loc=["body"], msg="At least one of text, title.")],
        )
    if "text" in sent and body.text is None:
        raise InvalidRequest(
            "The text cannot be removed, only changed.",
            errors=[FieldError(loc=["body", "text"], msg="Must be a string.")],
        )
    # Merge-patch semantics: an absent title stays, a null (or blank) one is removed.
    command = UpdatePromptCommand(
        owner_id=caller.id,
        prompt_id=prompt_id,
        text=body.text,
        title=body.title,
        clear_title="title" in sent and body.title is None,
    )
    return await ctx.rpc.call(streams.RPC_PROMPTS_UPDATE, command, Prompt)


@router.delete(
    "/prompts/{prompt_id:id}",
    status_code=204,
    response_class=Response,
    operation_id="deletePrompt",
    responses=forwarded(404, 409),
    tags=["prompts"],
)
async def delete_prompt(prompt_id: UUID, caller: CurrentUser, ctx: Context) -> Response:
    query = PromptQuery(owner_id=caller.id, prompt_id=prompt_id)
    await ctx.rpc.call(streams.RPC_PROMPTS_DELETE, query, Prompt)
    return Response(status_code=204)


@router.put(
    "/prompts/{prompt_id:id}/status",
    operation_id="setPromptStatus",
    responses=forwarded(404),
    tags=["prompts"],
)
async def set_prompt_status(
    prompt_id: UUID, body: SetPromptStatusRequest, caller: CurrentUser, ctx: Context
) -> Prompt:
    command = SetPromptStatusCommand(owner_id=caller.id, prompt_id=prompt_id, status=body.status)
    return await ctx.rpc.call(streams.RPC_PROMPTS_SET_STATUS, command, Prompt)


@router.post(
    "/prompts/{prompt_id:id}/retitle",
    operation_id="retitlePrompt",
    responses=forwarded(404),
    tags=["prompts"],
)
async def retitle_prompt(prompt_id: UUID, caller: CurrentUser, ctx: Context) -> Prompt:
    query = PromptQuery(owner_id=caller.id, prompt_id=prompt_id)
    async with ctx.budgets.spending(caller.id, Spend.llm_calls):
        return await ctx.rpc.call(
            streams.RPC_PROMPTS_RETITLE, query, Prompt, timeout=ctx.settings.llm_rpc_timeout_seconds
        )


@router.post(
    "/prompts/{prompt_id:id}/imagine",
    status_code=202,
    operation_id="imaginePrompt",
    responses=forwarded(404, 409),
    tags=["prompts", "tasks"],
)
@idempotent
async def imagine_prompt(
    prompt_id: UUID,
    caller: CurrentUser,
    ctx: Context,
    request: Request,
    request_id: RequestId,
    body: Annotated[ImagineRequest | None, Body()] = None,
) -> Task:
    if body is None and (await request.body()).strip() == b"null":
        # FastAPI takes a JSON `null` for a missing optional body; the contract's body is
        # an object or nothing.
        raise InvalidRequest(
            "The body must be an object (or absent).",
            errors=[FieldError(loc=["body"], msg="Must be an object.")],
        )
    # The prompts service decides whether the prompt may be rendered (404, 409 archived)
    # and hands back its text; the images service owns the task from there on.
    try:
        prompt = await ctx.rpc.call(
            streams.RPC_PROMPTS_PREPARE_GENERATION,
            PromptQuery(owner_id=caller.id, prompt_id=prompt_id),
            Prompt,
        )
    except (NotFound, Conflict):
        # Sent again after its answer was lost: its task, if the first attempt created one,
        # is the answer whatever happened to the prompt since (its generation was charged
        # then, and is not again).
        if request_id is not None and (task := await _requested_task(ctx, caller.id, request_id)):
            return task
        raise
    options = body or ImagineRequest()
    command = ImagineCommand(
        owner_id=caller.id,
        prompt_id=prompt.id,
        prompt_text=prompt.text,
        prompt_title=prompt.title,
        aspect_ratio=options.aspect_ratio,
        process_mode=options.process_mode,
        resubmit_if_lost=options.resubmit_if_lost,
        request_id=request_id,
    )
    async with ctx.budgets.spending(caller.id, Spend.generations, request_id):
        return await ctx.rpc.call(streams.RPC_IMAGES_IMAGINE, command, Task)


async def _requested_task(ctx: Context, owner_id: UUID, request_id: str) -> Task | None:
    """The task the request `request_id` created; None if it created none."""
    query = RequestedTaskQuery(owner_id=owner_id, request_id=request_id)
    try:
        return await ctx.rpc.call(streams.RPC_IMAGES_TASKS_REQUESTED, query, Task)
    except NotFound:
        return None
