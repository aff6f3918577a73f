"""The FastAPI application factory."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI
from fastapi.exceptions import RequestValidationError

from imagetron_sandbox import health
from imagetron_sandbox.agency.routes import router as agency_router
from imagetron_sandbox.chat.errors import OpenAIError, handle_openai_error
from imagetron_sandbox.chat.routes import router as chat_router
from imagetron_sandbox.faults.routes import router as faults_router
from imagetron_sandbox.goapi.errors import GoApiError, handle_goapi_error
from imagetron_sandbox.goapi.routes import router as goapi_router
from imagetron_sandbox.images.routes import router as images_router
from imagetron_sandbox.midjourney_proxy import routes as midjourney_proxy
from imagetron_sandbox.settings import SandboxSettings
from imagetron_sandbox.state import Sandbox
from imagetron_sandbox.validation import handle_validation_error

logger = logging.getLogger(__name__)


def create_app(settings: SandboxSettings | None = None) -> FastAPI:
    """A sandbox app; its lifespan owns the background tasks and the webhook HTTP client."""
    sandbox = Sandbox(settings or SandboxSettings())

    @asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        await sandbox.start()
        logger.info("imagetron-sandbox serving at %s", sandbox.settings.base_url)
        try:
            yield
        finally:
            await sandbox.stop()

    app = FastAPI(
        title="Imagetron sandbox",
        summary=(
            "Local stand-ins for GoAPI Midjourney, midjourney-proxy (original and fork) and "
            "OpenAI chat completions."
        ),
        version="0.1.0",
        lifespan=lifespan,
    )
    app.state.sandbox = sandbox
    app.add_exception_handler(GoApiError, handle_goapi_error)
    app.add_exception_handler(OpenAIError, handle_openai_error)
    app.add_exception_handler(RequestValidationError, handle_validation_error)
    app.add_exception_handler(midjourney_proxy.Unauthorized, midjourney_proxy.unauthorized)
    for router in (
        health.router,
        goapi_router,
        *midjourney_proxy.routers,
        images_router,
        chat_router,
        faults_router,
        agency_router,
    ):
        app.include_router(router)
    return app
