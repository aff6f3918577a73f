"""``/api/v1/task``: the GoAPI/PiAPI unified task endpoints (Midjourney only)."""

from __future__ import annotations

import hmac
from typing import Annotated

from fastapi import APIRouter, Body, Depends, Header

from imagetron_sandbox.goapi.errors import GoApiError
from imagetron_sandbox.goapi.models import CancelAnswer, ErrorEnvelope, TaskEnvelope, TaskRequest
from imagetron_sandbox.state import SandboxDep


async def require_api_key(
    sandbox: SandboxDep, x_api_key: Annotated[str | None, Header()] = None
) -> None:
    expected = sandbox.settings.goapi_api_key
    if not x_api_key or not hmac.compare_digest(x_api_key.encode(), expected.encode()):
        raise GoApiError(401, "Invalid API key")


router = APIRouter(
    prefix="/api/v1",
    tags=["goapi"],
    dependencies=[Depends(require_api_key)],
    responses={
        400: {"model": ErrorEnvelope},
        401: {"model": ErrorEnvelope},
        404: {"model": ErrorEnvelope},
    },
)


@router.post("/task")
async def create_task(request: Annotated[TaskRequest, Body()], sandbox: SandboxDep) -> TaskEnvelope:
    return TaskEnvelope(data=sandbox.tasks.submit(request))


@router.get("/task/{task_id}")
async def get_task(task_id: str, sandbox: SandboxDep) -> TaskEnvelope:
    return TaskEnvelope(data=sandbox.tasks.get(task_id))


@router.delete("/task/{task_id}")
async def cancel_task(task_id: str, sandbox: SandboxDep) -> CancelAnswer:
    sandbox.tasks.cancel(task_id)
    return CancelAnswer(message=f"task {task_id} canceled")
