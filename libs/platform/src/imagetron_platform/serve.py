"""Run a service's ASGI app under uvicorn with graceful shutdown."""

from __future__ import annotations

import uvicorn
from fastapi import FastAPI

from imagetron_platform.settings import ServiceSettings


def serve(app: FastAPI, settings: ServiceSettings) -> None:
    """Blocks until SIGINT/SIGTERM; in-flight requests get `shutdown_grace_seconds`, then the
    app's lifespan stops its consumers and closes its connections."""
    config = uvicorn.Config(
        app,
        host=settings.http_host,
        port=settings.http_port,
        log_config=None,  # logging is configured by init_observability
        timeout_graceful_shutdown=int(settings.shutdown_grace_seconds),
        proxy_headers=True,
        server_header=False,
    )
    uvicorn.Server(config).run()
