"""Users and API keys (identity lives in the gateway's own schema).

Operation ids, paths, parameters and models follow `contracts/openapi.yaml`; a contract
test compares the generated OpenAPI with the document."""

from __future__ import annotations

from fastapi import APIRouter

from imagetron_contracts.models.identity import CreatedUser, CreateUserRequest
from imagetron_contracts.models.identity import User as UserModel
from imagetron_gateway.app import identity
from imagetron_gateway.domain.identity import User
from imagetron_gateway.entrypoints.http.deps import Context, CurrentUser
from imagetron_gateway.entrypoints.http.problems import problems

router = APIRouter(prefix="/api/v1")


def user_model(user: User) -> UserModel:
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
    return CreatedUser(user=user_model(user), api_key=api_key)


@router.get("/me", operation_id="getMe", responses=problems(401), tags=["users"])
async def get_me(caller: CurrentUser) -> UserModel:
    return user_model(caller)
