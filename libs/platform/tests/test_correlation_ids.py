"""Correlation ids on every request (asgi-correlation-id), and Sentry's scope tagged with them
only when Sentry reports somewhere: without a DSN each request forked an isolation scope for
nothing, which every open event stream then held."""

from __future__ import annotations

import subprocess
import sys

import httpx
import sentry_sdk
from fastapi import FastAPI
from sentry_sdk.envelope import Envelope
from sentry_sdk.transport import Transport

from imagetron_platform.http import install_platform


class _Kept(Transport):
    def __init__(self) -> None:
        super().__init__()
        self.events: list[dict[str, object]] = []

    def capture_envelope(self, envelope: Envelope) -> None:
        self.events += [item.payload.json for item in envelope.items if item.type == "event"]


def _app() -> FastAPI:
    app = FastAPI()
    install_platform(app, "test")

    @app.get("/tagged")
    async def tagged() -> dict[str, object]:
        return {"tags": dict(sentry_sdk.get_isolation_scope()._tags)}

    return app


async def _tags_seen(request_id: str) -> object:
    transport = httpx.ASGITransport(app=_app())
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
        response = await client.get("/tagged", headers={"X-Request-ID": request_id})
    assert response.headers["x-request-id"] == request_id
    return response.json()["tags"]


async def test_without_sentry_no_request_touches_its_scope() -> None:
    scope = sentry_sdk.get_global_scope()
    before = scope.client
    scope.set_client(None)  # as a service started without IMAGETRON_SENTRY_DSN
    try:
        assert await _tags_seen("a" * 32) == {}
    finally:
        scope.set_client(before)


async def test_with_sentry_each_request_is_tagged_with_its_id() -> None:
    scope = sentry_sdk.get_global_scope()
    before = scope.client
    try:
        sentry_sdk.init(
            dsn="https://key@sentry.invalid/1",
            transport=_Kept(),
            default_integrations=False,
            auto_enabling_integrations=False,
        )
        assert await _tags_seen("b" * 32) == {"transaction_id": "b" * 32}
    finally:
        scope.set_client(before)


def test_without_sentry_its_sdk_is_not_even_imported() -> None:
    """asgi-correlation-id imports Sentry's SDK when it is installed, used or not: a tenth of
    a second of every service's start. A fresh interpreter serves a request without it."""
    served_without_sentry = """
import asyncio, sys
import subprocess
import sys

import httpx
from fastapi import FastAPI
from imagetron_platform.http import install_platform

app = FastAPI()
install_platform(app, "test")

async def main() -> int:
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
        response = await client.get("/livez", headers={"X-Request-ID": "c" * 32})
    return response.status_code

assert asyncio.run(main()) == 200
print("sentry_sdk" in sys.modules)
"""
    result = subprocess.run(
        [sys.executable, "-c", served_without_sentry], capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "False"
