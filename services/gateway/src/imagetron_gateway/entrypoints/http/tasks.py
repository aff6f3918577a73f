"""Generation tasks: forwarded to the images service.

Operation ids, paths, parameters and models follow `contracts/openapi.yaml`; a contract
test compares the generated OpenAPI with the document."""

from __future__ import annotations

from typing import Annotated
from uuid import UUID

from fastapi import APIRouter, Query
from fastapi.responses import Response, StreamingResponse

from imagetron_contracts import streams
from imagetron_contracts.models.images import (
    ImageContentLink,
    ListTasksQuery,
    RerollCommand,
    Task,
    TaskPage,
    TaskQuery,
    TaskStatus,
    UpscaleCommand,
    UpscaleRequest,
    VariationCommand,
    VariationRequest,
)
from imagetron_gateway.app.budgets import Spend
from imagetron_gateway.entrypoints.http.deps import Context, CurrentUser
from imagetron_gateway.entrypoints.http.idempotency import IdempotentRoute, RequestId, idempotent
from imagetron_gateway.entrypoints.http.images import IfNoneMatch, stream_stored
from imagetron_gateway.entrypoints.http.params import Cursor, Limit
from imagetron_gateway.entrypoints.http.problems import forwarded

router = APIRouter(prefix="/api/v1", route_class=IdempotentRoute)


@router.get("/tasks", operation_id="listTasks", responses=forwarded(), tags=["tasks"])
async def list_tasks(
    caller: CurrentUser,
    ctx: Context,
    prompt_id: UUID | None = None,
    status: TaskStatus | None = None,
    limit: Limit = 50,
    cursor: Cursor = None,
) -> TaskPage:
    query = ListTasksQuery(
        owner_id=caller.id, prompt_id=prompt_id, status=status, limit=limit, cursor=cursor
    )
    return await ctx.rpc.call(streams.RPC_IMAGES_TASKS_LIST, query, TaskPage)


@router.get(
    "/tasks/{task_id:id}",
    operation_id="getTask",
    responses=forwarded(404),
    tags=["tasks"],
)
async def get_task(task_id: UUID, caller: CurrentUser, ctx: Context) -> Task:
    query = TaskQuery(owner_id=caller.id, task_id=task_id)
    return await ctx.rpc.call(streams.RPC_IMAGES_TASKS_GET, query, Task)


# The follow-ups answer once the new task is recorded; it reaches the provider in the
# background, like imagine.
FOLLOW_UP_PROBLEMS = forwarded(404, 409)


@router.post(
    "/tasks/{task_id:id}/reroll",
    operation_id="rerollTask",
    status_code=202,
    responses=FOLLOW_UP_PROBLEMS,
    tags=["tasks"],
)
@idempotent
async def reroll_task(
    task_id: UUID, caller: CurrentUser, ctx: Context, request_id: RequestId
) -> Task:
    cmd = RerollCommand(owner_id=caller.id, task_id=task_id, request_id=request_id)
    async with ctx.budgets.spending(caller.id, Spend.generations, request_id):
        return await ctx.rpc.call(streams.RPC_IMAGES_TASKS_REROLL, cmd, Task)


@router.post(
    "/tasks/{task_id:id}/variation",
    operation_id="varyTask",
    status_code=202,
    responses=FOLLOW_UP_PROBLEMS,
    tags=["tasks"],
)
@idempotent
async def vary_task(
    task_id: UUID, body: VariationRequest, caller: CurrentUser, ctx: Context, request_id: RequestId
) -> Task:
    cmd = VariationCommand(
        owner_id=caller.id,
        task_id=task_id,
        index=body.index,
        strength=body.strength,
        request_id=request_id,
    )
    async with ctx.budgets.spending(caller.id, Spend.generations, request_id):
        return await ctx.rpc.call(streams.RPC_IMAGES_TASKS_VARIATION, cmd, Task)


@router.post(
    "/tasks/{task_id:id}/upscale",
    operation_id="upscaleTask",
    status_code=202,
    responses=FOLLOW_UP_PROBLEMS,
    tags=["tasks"],
)
@idempotent
async def upscale_task(
    task_id: UUID, body: UpscaleRequest, caller: CurrentUser, ctx: Context, request_id: RequestId
) -> Task:
    cmd = UpscaleCommand(
        owner_id=caller.id, task_id=task_id, index=body.index, request_id=request_id
    )
    async with ctx.budgets.spending(caller.id, Spend.generations, request_id):
        return await ctx.rpc.call(streams.RPC_IMAGES_TASKS_UPSCALE, cmd, Task)


@router.post(
    "/tasks/{task_id:id}/cancel",
    operation_id="cancelTask",
    responses=FOLLOW_UP_PROBLEMS,
    tags=["tasks"],
)
async def cancel_task(task_id: UUID, caller: CurrentUser, ctx: Context) -> Task:
    query = TaskQuery(owner_id=caller.id, task_id=task_id)
    return await ctx.rpc.call(streams.RPC_IMAGES_TASKS_CANCEL, query, Task)


@router.get(
    "/tasks/{task_id}/preview",
    operation_id="getTaskPreview",
    tags=["tasks"],
    response_class=StreamingResponse,
    responses={
        200: {"content": {"image/webp": {}}},
        304: {"description": "Not modified."},
        **forwarded(404),
    },
)
async def get_task_preview(
    task_id: UUID,
    caller: CurrentUser,
    ctx: Context,
    progress: Annotated[int | None, Query(ge=0, le=100)] = None,
    if_none_match: IfNoneMatch = None,
) -> Response:
    # `progress` only tells the steps' URLs apart; the latest preview is what is served.
    link = await ctx.rpc.call(
        streams.RPC_IMAGES_TASKS_PREVIEW_URL,
        TaskQuery(owner_id=caller.id, task_id=task_id),
        ImageContentLink,
    )
    return await stream_stored(ctx, link, "private, no-cache", if_none_match=if_none_match)
