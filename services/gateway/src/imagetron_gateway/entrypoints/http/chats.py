"""Subject chats: forwarded to the prompts service.

Operation ids, paths, parameters and models follow `contracts/openapi.yaml`; a contract
test compares the generated OpenAPI with the document. Starting and continuing a chat wait
for the language model, so they use `llm_rpc_timeout_seconds`."""

from __future__ import annotations

from uuid import UUID

from fastapi import APIRouter, Response

from imagetron_contracts import streams
from imagetron_contracts.models.chats import (
    Chat,
    ChatPage,
    ChatQuery,
    ChatSummary,
    ContinueChatCommand,
    ContinueChatRequest,
    ListChatsQuery,
    StartChatCommand,
    StartChatRequest,
)
from imagetron_gateway.app.budgets import Spend
from imagetron_gateway.entrypoints.http.deps import Context, CurrentUser
from imagetron_gateway.entrypoints.http.idempotency import IdempotentRoute, RequestId, idempotent
from imagetron_gateway.entrypoints.http.params import Cursor, Limit
from imagetron_gateway.entrypoints.http.problems import forwarded

router = APIRouter(prefix="/api/v1", route_class=IdempotentRoute)


@router.post(
    "/chats",
    status_code=201,
    operation_id="startChat",
    # 404: sent again with its Idempotency-Key, a request whose chat was deleted since.
    responses=forwarded(404),
    tags=["chats"],
)
@idempotent
async def start_chat(
    body: StartChatRequest, caller: CurrentUser, ctx: Context, request_id: RequestId
) -> Chat:
    command = StartChatCommand(
        owner_id=caller.id, brief=body.brief, count=body.count, request_id=request_id
    )
    async with ctx.budgets.spending(caller.id, Spend.llm_calls, request_id):
        return await ctx.rpc.call(
            streams.RPC_PROMPTS_CHATS_START,
            command,
            Chat,
            timeout=ctx.settings.llm_rpc_timeout_seconds,
        )


@router.get("/chats", operation_id="listChats", responses=forwarded(), tags=["chats"])
async def list_chats(
    caller: CurrentUser, ctx: Context, limit: Limit = 50, cursor: Cursor = None
) -> ChatPage:
    query = ListChatsQuery(owner_id=caller.id, limit=limit, cursor=cursor)
    return await ctx.rpc.call(streams.RPC_PROMPTS_CHATS_LIST, query, ChatPage)


@router.get(
    "/chats/{chat_id:id}",
    operation_id="getChat",
    responses=forwarded(404),
    tags=["chats"],
)
async def get_chat(chat_id: UUID, caller: CurrentUser, ctx: Context) -> Chat:
    query = ChatQuery(owner_id=caller.id, chat_id=chat_id)
    return await ctx.rpc.call(streams.RPC_PROMPTS_CHATS_GET, query, Chat)


@router.delete(
    "/chats/{chat_id:id}",
    status_code=204,
    response_class=Response,
    operation_id="deleteChat",
    responses=forwarded(404),
    tags=["chats"],
)
async def delete_chat(chat_id: UUID, caller: CurrentUser, ctx: Context) -> Response:
    query = ChatQuery(owner_id=caller.id, chat_id=chat_id)
    await ctx.rpc.call(streams.RPC_PROMPTS_CHATS_DELETE, query, ChatSummary)
    return Response(status_code=204)


@router.post(
    "/chats/{chat_id:id}/messages",
    status_code=201,
    operation_id="continueChat",
    responses=forwarded(404),
    tags=["chats"],
)
@idempotent
async def continue_chat(
    chat_id: UUID,
    body: ContinueChatRequest,
    caller: CurrentUser,
    ctx: Context,
    request_id: RequestId,
) -> Chat:
    command = ContinueChatCommand(
        owner_id=caller.id,
        chat_id=chat_id,
        text=body.text,
        count=body.count,
        request_id=request_id,
    )
    async with ctx.budgets.spending(caller.id, Spend.llm_calls, request_id):
        return await ctx.rpc.call(
            streams.RPC_PROMPTS_CHATS_CONTINUE,
            command,
            Chat,
            timeout=ctx.settings.llm_rpc_timeout_seconds,
        )
