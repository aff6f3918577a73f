"""The REST API (`/api/v1`): authenticate, forward to the owning service, map errors.

Operation ids, paths, parameters and models follow `contracts/openapi.yaml`; a contract test
compares this router's generated OpenAPI with the document."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Annotated
from uuid import UUID

from fastapi import APIRouter, Body, Query
from fastapi.responses import StreamingResponse
from imagetron_contracts import streams
from imagetron_contracts.models.identity import CreatedUser, CreateUserRequest, EventsToken
from imagetron_contracts.models.identity import User as UserModel
from imagetron_contracts.models.images import (
    Image,
    ImageContentLink,
    ImageKind,
    ImagePage,
    ImageQuery,
    ImagineCommand,
    ImagineRequest,
    ListImagesQuery,
    ListTasksQuery,
    Task,
    TaskPage,
    TaskQuery,
    TaskStatus,
)
from imagetron_contracts.models.prompts import (
    CreatePromptCommand,
    CreatePromptRequest,
    ListPromptsQuery,
    Prompt,
    PromptPage,
    PromptQuery,
)
from imagetron_platform.errors import ServiceUnavailable
from imagetron_platform.events_tokens import issue_events_token

from imagetron_gateway.app import identity
from imagetron_gateway.domain.identity import User
from imagetron_gateway.entrypoints.http.deps import Context, CurrentUser
from imagetron_gateway.entrypoints.http.problems import FORWARDED, problems

router = APIRouter(prefix="/api/v1")

Limit = Annotated[int, Query(ge=1, le=200)]
Cursor = Annotated[str | None, Query()]


def _user_model(user: User) -> UserModel:
    return UserModel(id=user.id, name=user.name, is_admin=user.is_admin, created_at=user.created_at)


@router.post(
    "/users",
    status_code=201,
    operation_id="createUser",
    responses=problems(401, 403, 422),
    tags=["users"],
)
async def create_user(body: CreateUserRequest, caller: CurrentUser, ctx: Context) -> CreatedUser:
    user, api_key = await identity.create_user(
        ctx.identity_uow(), caller, body.name, is_admin=bool(body.is_admin)
    )
    return CreatedUser(user=_user_model(user), api_key=api_key)


@router.get("/me", operation_id="getMe", responses=problems(401), tags=["users"])
async def get_me(caller: CurrentUser) -> UserModel:
    return _user_model(caller)


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


@router.get("/images", operation_id="listImages", responses=problems(*FORWARDED), tags=["images"])
async def list_images(
    caller: CurrentUser,
    ctx: Context,
    task_id: UUID | None = None,
    prompt_id: UUID | None = None,
    kind: ImageKind | None = None,
    limit: Limit = 50,
    cursor: Cursor = None,
) -> ImagePage:
    query = ListImagesQuery(
        owner_id=caller.id,
        task_id=task_id,
        prompt_id=prompt_id,
        kind=kind,
        limit=limit,
        cursor=cursor,
    )
    return await ctx.rpc.call(streams.RPC_IMAGES_IMAGES_LIST, query, ImagePage)


@router.get(
    "/images/{image_id}",
    operation_id="getImage",
    responses=problems(401, 404, 422, 503, 504),
    tags=["images"],
)
async def get_image(image_id: UUID, caller: CurrentUser, ctx: Context) -> Image:
    query = ImageQuery(owner_id=caller.id, image_id=image_id)
    return await ctx.rpc.call(streams.RPC_IMAGES_IMAGES_GET, query, Image)


@router.get(
    "/images/{image_id}/content",
    operation_id="getImageContent",
    tags=["images"],
    response_class=StreamingResponse,
    responses={
        200: {"content": {"image/png": {}, "image/jpeg": {}, "image/webp": {}}},
        **problems(401, 404, 409, 422, 503, 504),
    },
)
async def get_image_content(image_id: UUID, caller: CurrentUser, ctx: Context) -> StreamingResponse:
    # The images service checks ownership and hands out a short-lived URL of the stored
    # object; the bytes are streamed through, so clients need no access to object storage.
    link = await ctx.rpc.call(
        streams.RPC_IMAGES_IMAGES_CONTENT_URL,
        ImageQuery(owner_id=caller.id, image_id=image_id),
        ImageContentLink,
    )
    upstream = await ctx.http.send(ctx.http.build_request("GET", link.url), stream=True)
    if upstream.status_code != 200:
        await upstream.aclose()
        raise ServiceUnavailable(
            f"Object storage answered {upstream.status_code} for the image; retry later."
        )

    async def body() -> AsyncIterator[bytes]:
        try:
            async for chunk in upstream.aiter_raw():
                yield chunk
        finally:
            await upstream.aclose()

    headers = {"Cache-Control": "private, max-age=3600"}
    if "content-length" in upstream.headers:
        headers["Content-Length"] = upstream.headers["content-length"]
    return StreamingResponse(body(), media_type=link.content_type, headers=headers)


@router.post(
    "/events/token",
    status_code=201,
    operation_id="createEventsToken",
    responses=problems(401),
    tags=["events"],
)
async def create_events_token(caller: CurrentUser, ctx: Context) -> EventsToken:
    token, expires_at = issue_events_token(
        ctx.settings.events_token_secret.get_secret_value(),
        caller.id,
        ctx.settings.events_token_ttl_seconds,
    )
    return EventsToken(token=token, expires_at=datetime.fromtimestamp(expires_at, UTC))
