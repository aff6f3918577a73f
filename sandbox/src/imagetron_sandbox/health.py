"""``/livez`` and ``/readyz``."""

from __future__ import annotations

from fastapi import APIRouter
from fastapi.responses import JSONResponse

from imagetron_sandbox.state import SandboxDep

router = APIRouter(tags=["health"])


@router.get("/livez")
async def livez() -> dict[str, str]:
    return {"status": "ok"}


@router.get("/readyz")
async def readyz(sandbox: SandboxDep) -> JSONResponse:
    if sandbox.ready:
        return JSONResponse({"status": "ready"})
    return JSONResponse({"status": "starting"}, status_code=503)
