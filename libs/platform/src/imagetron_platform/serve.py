"""Run a service's ASGI app under uvicorn with graceful shutdown."""

from __future__ import annotations

import logging
import resource

# Imported with this module rather than by each service after the fork server forked it (it
# imports this module, through every service, once for all): uvicorn's implementations, named
# in `serve` rather than "auto", which picked them anew at every start; and httpcore, which
# httpx imports when a service makes its first client.
import httpcore  # noqa: F401
import uvicorn
import uvicorn.lifespan.on
import uvicorn.loops.uvloop
from fastapi import FastAPI
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from imagetron_platform.settings import ServiceSettings

log = logging.getLogger(__name__)


def serve(app: FastAPI, settings: ServiceSettings) -> None:
    """Blocks until SIGINT/SIGTERM; in-flight requests get `shutdown_grace_seconds`, then the
    app's lifespan stops its consumers and closes its connections."""
    raise_open_file_limit()
    uvicorn.Server(uvicorn_config(app, settings)).run()


def uvicorn_config(app: FastAPI, settings: ServiceSettings) -> uvicorn.Config:
    return uvicorn.Config(
        app,
        host=settings.http_host,
        port=settings.http_port,
        log_config=None,  # logging is configured by init_observability
        timeout_graceful_shutdown=int(settings.shutdown_grace_seconds),
        proxy_headers=True,
        server_header=False,
        http=HttpToolsProtocol,
        loop="uvloop",
        lifespan="on",
        ws="none",  # no service serves WebSockets: uvicorn's protocol for them is not loaded
    )


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
