"""Generation tasks: forwarded to the images service.

Operation ids, paths, parameters and models follow `contracts/openapi.yaml`; a contract
test compares the generated OpenAPI with the document."""

from __future__ import annotations

from uuid import UUID

from fastapi import APIRouter

from imagetron_contracts import streams
from imagetron_contracts.models.images import (
    ListTasksQuery,
    Task,
    TaskPage,
    TaskQuery,
    TaskStatus,
)
from imagetron_gateway.entrypoints.http.deps import Context, CurrentUser
from imagetron_gateway.entrypoints.http.params import Cursor, Limit
from imagetron_gateway.entrypoints.http.problems import FORWARDED, problems

router = APIRouter(prefix="/api/v1")


@router.get("/tasks", operation_id="listTasks", responses=problems(*FORWARDED), tags=["tasks"])
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
    "/tasks/{task_id}",
    operation_id="getTask",
    responses=problems(401, 404, 422, 503, 504),
    tags=["tasks"],
)
async def get_task(task_id: UUID, caller: CurrentUser, ctx: Context) -> Task:
    query = TaskQuery(owner_id=caller.id, task_id=task_id)
    return await ctx.rpc.call(streams.RPC_IMAGES_TASKS_GET, query, Task)
