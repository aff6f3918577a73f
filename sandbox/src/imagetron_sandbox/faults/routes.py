"""``/sandbox/faults``: read, replace, patch or reset the global fault knobs."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Body
from fastapi.exceptions import RequestValidationError
from pydantic import JsonValue, ValidationError

from imagetron_sandbox.faults.knobs import FaultKnobs
from imagetron_sandbox.state import SandboxDep

router = APIRouter(prefix="/sandbox/faults", tags=["sandbox"])


@router.get("")
async def read_faults(sandbox: SandboxDep) -> FaultKnobs:
    return sandbox.faults.knobs


@router.put("")
async def replace_faults(knobs: Annotated[FaultKnobs, Body()], sandbox: SandboxDep) -> FaultKnobs:
    """Install exactly these knobs (fields left out take their harmless defaults)."""
    return sandbox.faults.replace(knobs)


@router.patch("")
async def patch_faults(
    changes: Annotated[dict[str, JsonValue], Body()], sandbox: SandboxDep
) -> FaultKnobs:
    """Change only the given knobs."""
    try:
        knobs = sandbox.faults.knobs.overridden(dict(changes))
    except ValidationError as exc:
        raise RequestValidationError(exc.errors(), body=changes) from exc
    return sandbox.faults.replace(knobs)


@router.delete("")
async def reset_faults(sandbox: SandboxDep) -> FaultKnobs:
    return sandbox.faults.reset()
