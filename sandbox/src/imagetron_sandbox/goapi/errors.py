"""GoAPI-style error answers: ``{"code": <status>, "data": null, "message": "..."}``."""

from __future__ import annotations

from fastapi import Request
from fastapi.responses import JSONResponse

from imagetron_sandbox.goapi.models import ErrorEnvelope


class GoApiError(Exception):
    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


def goapi_error_response(status: int, message: str) -> JSONResponse:
    body = ErrorEnvelope(code=status, message=message)
    return JSONResponse(body.model_dump(mode="json"), status_code=status)


async def handle_goapi_error(_request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, GoApiError)
    return goapi_error_response(exc.status, exc.message)
