"""The caller's own API keys.

Operation ids, paths, parameters and models follow `contracts/openapi.yaml`; a contract
test compares the generated OpenAPI with the document."""

from __future__ import annotations

from uuid import UUID

from fastapi import APIRouter, Response

from imagetron_contracts.models.identity import ApiKey as ApiKeyModel
from imagetron_contracts.models.identity import (
    ApiKeyList,
    CreateApiKeyRequest,
    CreatedApiKey,
    UpdateApiKeyRequest,
)
from imagetron_gateway.app import keys
from imagetron_gateway.domain.identity import ApiKey
from imagetron_gateway.entrypoints.http.deps import Context, CurrentUser
from imagetron_gateway.entrypoints.http.problems import problems

router = APIRouter(prefix="/api/v1", tags=["keys"])


def key_model(key: ApiKey) -> ApiKeyModel:
    return ApiKeyModel(
        id=key.id,
        name=key.name,
        created_at=key.created_at,
        expires_at=key.expires_at,
        last_used_at=key.last_used_at,
    )


def created_model(issued: keys.IssuedKey) -> CreatedApiKey:
    return CreatedApiKey(key=key_model(issued.key), api_key=issued.secret)


@router.get("/keys", operation_id="listApiKeys", responses=problems(401))
async def list_api_keys(caller: CurrentUser, ctx: Context) -> ApiKeyList:
    found = await keys.list_keys(ctx.identity_uow(), caller.id)
    return ApiKeyList(items=[key_model(k) for k in found])


@router.post("/keys", status_code=201, operation_id="createApiKey", responses=problems(401, 422))
async def create_api_key(
    body: CreateApiKeyRequest, caller: CurrentUser, ctx: Context
) -> CreatedApiKey:
    issued = await keys.create_key(ctx.identity_uow(), caller, body.name, body.expires_in_days)
    return created_model(issued)


@router.patch("/keys/{key_id:id}", operation_id="renameApiKey", responses=problems(401, 404, 422))
async def rename_api_key(
    key_id: UUID, body: UpdateApiKeyRequest, caller: CurrentUser, ctx: Context
) -> ApiKeyModel:
    return key_model(await keys.rename_key(ctx.identity_uow(), caller.id, key_id, body.name))


@router.delete(
    "/keys/{key_id:id}",
    status_code=204,
    response_class=Response,
    operation_id="revokeApiKey",
    responses=problems(401, 404, 422),
)
async def revoke_api_key(key_id: UUID, caller: CurrentUser, ctx: Context) -> Response:
    await keys.revoke_key(ctx.identity_uow(), ctx.revocations, caller.id, key_id)
    return Response(status_code=204)


@router.post(
    "/keys/{key_id:id}/rotate",
    status_code=201,
    operation_id="rotateApiKey",
    responses=problems(401, 404, 422),
)
async def rotate_api_key(key_id: UUID, caller: CurrentUser, ctx: Context) -> CreatedApiKey:
    issued = await keys.rotate_key(ctx.identity_uow(), ctx.revocations, caller, key_id)
    return created_model(issued)
