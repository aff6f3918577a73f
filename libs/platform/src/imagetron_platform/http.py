"""What every service's FastAPI app has: problem+json errors, correlation ids, metrics,
`/livez`, `/readyz` and `/metrics`."""

from __future__ import annotations

import asyncio
import hmac
import logging
import sys
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass

from asgi_correlation_id import CorrelationIdMiddleware
from asgi_correlation_id.extensions.sentry import get_sentry_extension
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.responses import Response
from starlette.routing import Match
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from imagetron_contracts.models.common import FieldError
from imagetron_platform import metrics
from imagetron_platform.errors import (
    InvalidRequest,
    NotFound,
    PayloadTooLarge,
    ProblemError,
    ServiceUnavailable,
    Unauthorized,
)
from imagetron_platform.outages import dependency_outage

log = logging.getLogger(__name__)
PROBLEM_JSON = "application/problem+json"

ReadinessCheck = Callable[[], Awaitable[None]]


def problem_response(exc: ProblemError, request: Request) -> JSONResponse:
    problem = exc.to_problem(instance=request.url.path)
    headers = dict(exc.headers)
    if isinstance(exc, ServiceUnavailable):
        headers.setdefault("Retry-After", str(exc.retry_after_seconds))
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
    if exc.status_code == 400 and isinstance(exc.__cause__, ValueError | RecursionError):
        # FastAPI's answer to a JSON body it could not even decode (not UTF-8, nested past
        # the parser's depth): a malformed request like any other, so 422 as documented.
        return problem_response(InvalidRequest(_undecodable(exc.__cause__)), request)
    if exc.status_code == 413:
        return problem_response(
            PayloadTooLarge("The request body is larger than this operation accepts."), request
        )
    if exc.status_code == 405:
        # Starlette names the methods of the first route that matched the path; the path
        # may have more (one route per method), so list them all.
        return problem_response(
            method_not_allowed(request.method, allowed_methods(request)), request
        )
    err = ProblemError(str(exc.detail), headers=dict(exc.headers or {}))
    err.status, err.title, err.slug = exc.status_code, str(exc.detail), f"http-{exc.status_code}"
    return problem_response(err, request)


def method_not_allowed(method: str, allowed: list[str]) -> ProblemError:
    """The 405 problem, with the `Allow` header naming what the path takes."""
    err = ProblemError(
        f"{method} is not allowed here; use {', '.join(allowed)}.",
        headers={"Allow": ", ".join(allowed)},
    )
    err.status, err.title, err.slug = 405, "Method Not Allowed", "http-405"
    return err


def _undecodable(cause: BaseException) -> str:
    if isinstance(cause, UnicodeDecodeError):
        return "The request body is not UTF-8."
    if isinstance(cause, RecursionError):
        return "The request body is nested too deeply."
    return f"The request body is not valid JSON: {cause}."


_METHODS = ("DELETE", "GET", "HEAD", "PATCH", "POST", "PUT")


def allowed_methods(request: Request) -> list[str]:
    """Every method some route accepts on the request's path (asked of the router itself,
    so included routers count like any route)."""
    routes = request.app.router.routes
    return [
        method
        for method in _METHODS
        if any(
            route.matches({**request.scope, "method": method})[0] is Match.FULL for route in routes
        )
    ]


async def _on_unexpected(request: Request, exc: Exception) -> Response:
    outage = dependency_outage(exc)
    if outage is not None:
        log.warning("answering 503 on %s %s: %r", request.method, request.url.path, exc)
        return problem_response(outage, request)
    log.exception("unhandled error on %s %s", request.method, request.url.path, exc_info=exc)
    return problem_response(ProblemError("Something went wrong on our side."), request)


#: On every answer. Pages (HTML) also get `PAGE_POLICY`; API answers that say nothing
#: about caching get `no-store` (they are per-user and often secret: keys, tokens).
SECURITY_HEADERS = (
    (b"x-content-type-options", b"nosniff"),
    (b"referrer-policy", b"no-referrer"),
)
#: Scripts, styles and everything else from our own origin only; never framed. Images may
#: also be `data:` URIs (the docs' icons).
PAGE_POLICY = (
    b"default-src 'self'; img-src 'self' data:; frame-ancestors 'none'; "
    b"base-uri 'none'; form-action 'self'"
)


class SecurityHeadersMiddleware:
    """Plain ASGI (no extra stream hop for SSE or image bytes): adds the headers to the
    response start."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = list(message.get("headers", []))
                present = {name.lower() for name, _ in headers}
                headers += [h for h in SECURITY_HEADERS if h[0] not in present]
                content_type = next((v for n, v in headers if n.lower() == b"content-type"), b"")
                if b"cache-control" not in present:
                    headers.append((b"cache-control", b"no-store"))
                if b"content-security-policy" not in present:
                    headers.append((b"content-security-policy", PAGE_POLICY))
                if content_type.startswith(b"text/html"):
                    headers.append((b"x-frame-options", b"DENY"))
                message = {**message, "headers": headers}
            await send(message)

        await self.app(scope, receive, send_with_headers)


@dataclass(frozen=True)
class MetricsAccess:
    """Who may read `/metrics`: with `token`, only `Authorization: Bearer <token>`; with
    `served` False (a public listener without a token), nobody: 404."""

    token: str | None = None
    served: bool = True


class CorrelationIds(CorrelationIdMiddleware):
    """asgi-correlation-id's middleware, which also tags Sentry's scope with each request's
    id; only when Sentry reports somewhere (`init_observability` with a DSN). Otherwise that
    tag forked an isolation scope per request for nothing, held by every open event stream
    (tracemalloc on a notifier with 2,000 streams: 1 KB each)."""

    def __post_init__(self) -> None:
        # Not the library's own, which imports Sentry's SDK whenever it is installed, used or
        # not: 0.07 s of CPU in every service's start, after the fork server's import.
        self.sentry_extension = get_sentry_extension() if _sentry_reports() else _untagged


def _sentry_reports() -> bool:
    sentry = sys.modules.get("sentry_sdk")
    return sentry is not None and bool(sentry.get_client().is_active())


def _untagged(correlation_id: str) -> None:
    del correlation_id


def install_platform(
    app: FastAPI,
    service: str,
    readiness: Mapping[str, ReadinessCheck] | None = None,
    metrics_access: MetricsAccess = MetricsAccess(),
) -> None:
    """Error rendering, correlation ids, HTTP metrics and the operational endpoints."""
    app.add_exception_handler(ProblemError, _on_problem)
    app.add_exception_handler(RequestValidationError, _on_validation)
    app.add_exception_handler(StarletteHTTPException, _on_http)
    app.add_exception_handler(Exception, _on_unexpected)
    app.add_middleware(SecurityHeadersMiddleware)
    app.add_middleware(metrics.HttpMetricsMiddleware, service=service)
    app.add_middleware(CorrelationIds, header_name="X-Request-ID")
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
    async def metrics_endpoint(request: Request) -> Response:
        if not metrics_access.served:
            raise NotFound("Not found.")
        if metrics_access.token is not None:
            scheme, _, given = request.headers.get("authorization", "").partition(" ")
            expected = metrics_access.token.encode()
            if scheme.lower() != "bearer" or not hmac.compare_digest(
                expected, given.strip().encode("utf-8", "surrogateescape")
            ):
                raise Unauthorized("Send the metrics token: `Authorization: Bearer <token>`.")
        return metrics.render()
