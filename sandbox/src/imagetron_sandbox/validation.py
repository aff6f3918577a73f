"""Request validation errors answered in the dialect of the API that was called."""

from __future__ import annotations

from fastapi import Request
from fastapi.exception_handlers import request_validation_exception_handler
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response

from imagetron_sandbox.chat.errors import openai_error_response
from imagetron_sandbox.chat.models import ErrorDetail
from imagetron_sandbox.goapi.errors import goapi_error_response


def _location(error: dict[str, object]) -> str:
    loc = error.get("loc")
    parts = [str(part) for part in loc if part != "body"] if isinstance(loc, tuple | list) else []
    return ".".join(parts)


def _summary(exc: RequestValidationError) -> tuple[str, str | None]:
    errors = list(exc.errors())
    described = [f"{_location(e) or 'body'}: {e.get('msg', 'invalid')}" for e in errors]
    return "; ".join(described) or "invalid request", (
        _location(errors[0]) or None
    ) if errors else None


async def handle_validation_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, RequestValidationError)
    path = request.url.path
    message, param = _summary(exc)
    if path.startswith("/api/"):
        return goapi_error_response(400, f"invalid request: {message}")
    if path.startswith("/v1/"):
        return openai_error_response(
            400, ErrorDetail(message=message, type="invalid_request_error", param=param)
        )
    response: JSONResponse | Response = await request_validation_exception_handler(request, exc)
    return response
