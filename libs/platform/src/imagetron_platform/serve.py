"""Run a service's ASGI app under uvicorn with graceful shutdown."""

from __future__ import annotations

import logging
import resource

import uvicorn
from fastapi import FastAPI

from imagetron_platform.settings import ServiceSettings

log = logging.getLogger(__name__)


def serve(app: FastAPI, settings: ServiceSettings) -> None:
    """Blocks until SIGINT/SIGTERM; in-flight requests get `shutdown_grace_seconds`, then the
    app's lifespan stops its consumers and closes its connections."""
    raise_open_file_limit()
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


def raise_open_file_limit() -> int:
    """Raise this process's open-file limit to the most it may have (the hard limit), as
    servers do: every connection is a file, and the default soft limit (often 1,024) is far
    below the thousands of event streams a notifier or gateway holds. Returns the limit."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard != resource.RLIM_INFINITY and soft < hard:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
        except (ValueError, OSError):
            log.warning("could not raise the open-file limit from %d to %d", soft, hard)
            return soft
        return hard
    return soft
