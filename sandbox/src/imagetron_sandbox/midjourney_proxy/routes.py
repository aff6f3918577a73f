"""The midjourney-proxy face's endpoints: the fork's (trueai-org v10+) under ``/mj`` and
the original's (novicezk v2.x) under ``/novicezk/mj``, so a base URL picks the flavour
(``http://sandbox`` or ``http://sandbox/novicezk``). Header ``mj-api-secret`` when the
sandbox's ``midjourney_proxy_api_secret`` is set."""

from __future__ import annotations

import hmac
from typing import Annotated

from fastapi import APIRouter, Body, Depends, Header
from fastapi.responses import JSONResponse, Response

from imagetron_sandbox.midjourney_proxy.models import (
    ActionBody,
    ChangeBody,
    Flavour,
    ImagineBody,
    SubmitResult,
)
from imagetron_sandbox.midjourney_proxy.service import Submitted
from imagetron_sandbox.state import SandboxDep


async def require_api_secret(
    sandbox: SandboxDep, mj_api_secret: Annotated[str | None, Header()] = None
) -> None:
    expected = sandbox.settings.midjourney_proxy_api_secret
    if expected and not (
        mj_api_secret and hmac.compare_digest(mj_api_secret.encode(), expected.encode())
    ):
        raise Unauthorized()


class Unauthorized(Exception):
    pass


async def unauthorized(_request: object, _exc: Exception) -> Response:
    return JSONResponse({"code": 401, "description": "mj-api-secret is wrong"}, status_code=401)


def _answer(submitted: Submitted) -> JSONResponse:
    status, result = submitted
    return JSONResponse(result.model_dump(mode="json"), status_code=status)


def _router(flavour: Flavour, prefix: str) -> APIRouter:
    router = APIRouter(
        prefix=prefix,
        tags=[f"midjourney-proxy ({flavour})"],
        dependencies=[Depends(require_api_secret)],
        responses={200: {"model": SubmitResult}},
    )

    @router.post("/submit/imagine", operation_id=f"mj_{flavour}_imagine")
    async def imagine(body: Annotated[ImagineBody, Body()], sandbox: SandboxDep) -> JSONResponse:
        return _answer(sandbox.proxy.imagine(body, flavour))

    if flavour is Flavour.original:

        @router.post("/submit/change", operation_id="mj_original_change")
        async def change(body: Annotated[ChangeBody, Body()], sandbox: SandboxDep) -> JSONResponse:
            return _answer(sandbox.proxy.change(body))

    else:

        @router.post("/submit/action", operation_id="mj_fork_action")
        async def action(body: Annotated[ActionBody, Body()], sandbox: SandboxDep) -> JSONResponse:
            return _answer(sandbox.proxy.action(body))

        @router.post("/task/{task_id}/cancel", operation_id="mj_fork_cancel")
        async def cancel(task_id: str, sandbox: SandboxDep) -> Response:
            sandbox.proxy.cancel(task_id)
            return Response(status_code=200)

    @router.get("/task/{task_id}/fetch", operation_id=f"mj_{flavour}_fetch")
    async def fetch(task_id: str, sandbox: SandboxDep) -> Response:
        found = sandbox.proxy.fetch(task_id, flavour)
        # Both proxies answer an unknown id with an empty body.
        return Response(status_code=200) if found is None else JSONResponse(found)

    return router


routers = (_router(Flavour.fork, "/mj"), _router(Flavour.original, "/novicezk/mj"))
