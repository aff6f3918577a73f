"""``/sandbox/agency``: what the stand-in agency received, as its portal would show it."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, HTTPException

from imagetron_sandbox.agency.csv_check import CsvReport
from imagetron_sandbox.state import SandboxDep

router = APIRouter(prefix="/sandbox/agency", tags=["sandbox"])


@router.get("/files/{user}")
async def agency_files(user: str, sandbox: SandboxDep) -> list[dict[str, Any]]:
    """The files a user uploaded (temporary `.name.part` files included)."""
    try:
        return sandbox.agency.files(user)
    except ValueError as exc:
        raise HTTPException(status_code=422, detail=str(exc)) from exc


@router.get("/reports")
async def agency_reports(sandbox: SandboxDep, user: str | None = None) -> list[CsvReport]:
    """The portal's answer to every CSV uploaded, oldest first."""
    return [r for r in sandbox.agency.reports if user is None or r.user == user]


@router.delete("")
async def reset_agency(sandbox: SandboxDep) -> dict[str, str]:
    sandbox.agency.reset()
    return {"status": "reset"}
