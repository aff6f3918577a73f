"""``/v1/chat/completions`` and ``/v1/models``: an OpenAI-compatible stand-in."""

from __future__ import annotations

import hmac
from typing import Annotated

from fastapi import APIRouter, Body, Depends, Header

from imagetron_sandbox.chat.errors import OpenAIError
from imagetron_sandbox.chat.models import (
    ChatCompletion,
    ChatCompletionRequest,
    ErrorBody,
    ModelList,
)
from imagetron_sandbox.state import SandboxDep


async def require_bearer(
    sandbox: SandboxDep, authorization: Annotated[str | None, Header()] = None
) -> None:
    scheme, _, key = (authorization or "").partition(" ")
    key = key.strip()
    if scheme.lower() != "bearer" or not key:
        raise OpenAIError(
            401,
            "You didn't provide an API key. You need to provide your API key in an "
            "Authorization header using Bearer auth (i.e. Authorization: Bearer YOUR_KEY).",
        )
    expected = sandbox.settings.openai_api_key
    if expected is not None and not hmac.compare_digest(key.encode(), expected.encode()):
        raise OpenAIError(401, "Incorrect API key provided.", code="invalid_api_key")


router = APIRouter(
    prefix="/v1",
    tags=["openai"],
    dependencies=[Depends(require_bearer)],
    responses={
        400: {"model": ErrorBody},
        401: {"model": ErrorBody},
        429: {"model": ErrorBody},
        500: {"model": ErrorBody},
    },
)


@router.post("/chat/completions")
async def create_chat_completion(
    request: Annotated[ChatCompletionRequest, Body()], sandbox: SandboxDep
) -> ChatCompletion:
    return await sandbox.chat.complete(request)


@router.get("/models")
async def list_models(sandbox: SandboxDep) -> ModelList:
    return sandbox.chat.models()
