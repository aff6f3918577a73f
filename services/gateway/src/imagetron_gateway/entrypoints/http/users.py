"""Users and API keys (identity lives in the gateway's own schema).

Operation ids, paths, parameters and models follow `contracts/openapi.yaml`; a contract
test compares the generated OpenAPI with the document."""

from __future__ import annotations

from uuid import UUID

from fastapi import APIRouter, Response

from imagetron_contracts.models.identity import (
    Allowance,
    ApiKeyList,
    CreatedUser,
    CreateUserRequest,
    UpdateUserRequest,
    Usage,
    UserList,
)
from imagetron_contracts.models.identity import User as UserModel
from imagetron_gateway.app import identity, keys
from imagetron_gateway.app.budgets import Spend
from imagetron_gateway.domain.identity import User
from imagetron_gateway.entrypoints.http.deps import Context, CurrentUser
from imagetron_gateway.entrypoints.http.keys import key_model
from imagetron_gateway.entrypoints.http.problems import problems

router = APIRouter(prefix="/api/v1")


def user_model(user: User, *, disabled: bool = False) -> UserModel:
    return UserModel(
        id=user.id,
        name=user.name,
        is_admin=user.is_admin,
        created_at=user.created_at,
        disabled=disabled,
    )


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
    return CreatedUser(user=user_model(user), api_key=api_key)


@router.get("/me/usage", operation_id="getMyUsage", responses=problems(401), tags=["users"])
async def get_my_usage(caller: CurrentUser, ctx: Context) -> Usage:
    day, resets_at, allowances = await ctx.budgets.today(caller.id)

    def allowance(kind: Spend) -> Allowance:
        found = allowances[kind]
        return Allowance(limit=found.limit, used=found.used, remaining=found.remaining)

    return Usage(
        day=day,
        resets_at=resets_at,
        llm_calls=allowance(Spend.llm_calls),
        generations=allowance(Spend.generations),
    )


@router.get("/me", operation_id="getMe", responses=problems(401), tags=["users"])
async def get_me(caller: CurrentUser) -> UserModel:
    return user_model(caller)


# -- administration: every user and every key (admins only; 403 for anyone else)


@router.get("/users", operation_id="listUsers", responses=problems(401, 403), tags=["users"])
async def list_users(caller: CurrentUser, ctx: Context) -> UserList:
    accounts = await keys.list_users(ctx.identity_uow(), caller)
    return UserList(items=[user_model(a.user, disabled=a.disabled) for a in accounts])


@router.patch(
    "/users/{user_id:id}",
    operation_id="updateUser",
    responses=problems(401, 403, 404, 422),
    tags=["users"],
)
async def update_user(
    user_id: UUID, body: UpdateUserRequest, caller: CurrentUser, ctx: Context
) -> UserModel:
    account = await keys.set_user_disabled(
        ctx.identity_uow(), ctx.revocations, caller, user_id, disabled=body.disabled
    )
    return user_model(account.user, disabled=account.disabled)


@router.delete(
    "/users/{user_id:id}",
    status_code=204,
    response_class=Response,
    operation_id="deleteUser",
    responses=problems(401, 403, 404, 422),
    tags=["users"],
)
async def delete_user(user_id: UUID, caller: CurrentUser, ctx: Context) -> Response:
    await keys.delete_user(ctx.identity_uow(), ctx.revocations, caller, user_id)
    return Response(status_code=204)


@router.get(
    "/users/{user_id:id}/keys",
    operation_id="listUserApiKeys",
    responses=problems(401, 403, 404, 422),
    tags=["users"],
)
async def list_user_api_keys(user_id: UUID, caller: CurrentUser, ctx: Context) -> ApiKeyList:
    found = await keys.list_user_keys(ctx.identity_uow(), caller, user_id)
    return ApiKeyList(items=[key_model(k) for k in found])


@router.delete(
    "/users/{user_id:id}/keys/{key_id:id}",
    status_code=204,
    response_class=Response,
    operation_id="revokeUserApiKey",
    responses=problems(401, 403, 404, 422),
    tags=["users"],
)
async def revoke_user_api_key(
    user_id: UUID, key_id: UUID, caller: CurrentUser, ctx: Context
) -> Response:
    await keys.revoke_user_key(ctx.identity_uow(), ctx.revocations, caller, user_id, key_id)
    return Response(status_code=204)
