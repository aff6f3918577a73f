"""What every service's FastAPI app has: problem+json errors, correlation ids, metrics,
`/livez`, `/readyz` and `/metrics`."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Mapping

from asgi_correlation_id import CorrelationIdMiddleware
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.responses import Response

from imagetron_contracts.models.common import FieldError
from imagetron_platform import metrics
from imagetron_platform.errors import InvalidRequest, ProblemError, ServiceUnavailable
from imagetron_platform.outages import dependency_outage

log = logging.getLogger(__name__)
PROBLEM_JSON = "application/problem+json"

ReadinessCheck = Callable[[], Awaitable[None]]


def problem_response(exc: ProblemError, request: Request) -> JSONResponse:
    problem = exc.to_problem(instance=request.url.path)
    headers = (
        {"Retry-After": str(exc.retry_after_seconds)}
        if isinstance(exc, ServiceUnavailable)
        else None
    )
    return JSONResponse(
        problem.model_dump(mode="json", exclude_none=True),
        status_code=exc.status,
        media_type=PROBLEM_JSON,
        headers=headers,
    )


async def _on_problem(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, ProblemError)
    if exc.status >= 500:
        log.warning("answering %s: %s", exc.status, exc.detail)
    return problem_response(exc, request)


async def _on_validation(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, RequestValidationError)
    errors = [
        FieldError(loc=[p for p in e.get("loc", ()) if isinstance(p, str | int)], msg=e["msg"])
        for e in exc.errors()
    ]
    detail = "; ".join(f"{'.'.join(map(str, e.loc))}: {e.msg}" for e in errors)
    return problem_response(InvalidRequest(detail or "Invalid request.", errors=errors), request)


async def _on_http(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, StarletteHTTPException)
    err = ProblemError(str(exc.detail))
    err.status, err.title, err.slug = exc.status_code, str(exc.detail), f"http-{exc.status_code}"
    response = problem_response(err, request)
    if exc.headers:
        response.headers.update(exc.headers)
    return response


async def _on_unexpected(request: Request, exc: Exception) -> Response:
    outage = dependency_outage(exc)
    if outage is not None:
        log.warning("answering 503 on %s %s: %r", request.method, request.url.path, exc)
        return problem_response(outage, request)
    log.exception("unhandled error on %s %s", request.method, request.url.path, exc_info=exc)
    return problem_response(ProblemError("Something went wrong on our side."), request)


def install_platform(
    app: FastAPI, service: str, readiness: Mapping[str, ReadinessCheck] | None = None
) -> None:
    """Error rendering, correlation ids, HTTP metrics and the operational endpoints."""
    app.add_exception_handler(ProblemError, _on_problem)
    app.add_exception_handler(RequestValidationError, _on_validation)
    app.add_exception_handler(StarletteHTTPException, _on_http)
    app.add_exception_handler(Exception, _on_unexpected)
    app.add_middleware(metrics.HttpMetricsMiddleware, service=service)
    app.add_middleware(CorrelationIdMiddleware, header_name="X-Request-ID")
    checks = dict(readiness or {})

    @app.get("/livez", include_in_schema=False)
    async def livez() -> dict[str, str]:
        return {"status": "ok", "service": service}

    @app.get("/readyz", include_in_schema=False)
    async def readyz() -> JSONResponse:
        results: dict[str, str] = {}
        for name, check in checks.items():
            try:
                await asyncio.wait_for(check(), timeout=2.0)
                results[name] = "ok"
            except Exception as exc:
                results[name] = f"failing: {exc!r}"
        ok = all(v == "ok" for v in results.values())
        return JSONResponse(
            {"status": "ok" if ok else "unavailable", "service": service, "checks": results},
            status_code=200 if ok else 503,
        )

    @app.get("/metrics", include_in_schema=False)
    async def metrics_endpoint() -> Response:
        return metrics.render()
