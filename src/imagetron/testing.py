"""Test helpers shared by the packages' integration tests."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator

import uvicorn
from fastapi import FastAPI

from imagetron.servers import LOCALHOST, free_port


@contextlib.asynccontextmanager
async def serving(app: FastAPI, port: int | None = None) -> AsyncIterator[str]:
    """Run `app` in a real uvicorn on 127.0.0.1 (lifespan included) and yield its base URL.

    Real sockets matter for streaming: httpx's ASGI transport buffers whole responses."""
    port = port or free_port()
    config = uvicorn.Config(
        app,
        host=LOCALHOST,
        port=port,
        log_config=None,
        lifespan="on",
        timeout_graceful_shutdown=1,
    )
    server = uvicorn.Server(config)
    task = asyncio.create_task(server.serve())
    try:
        while not server.started:
            if task.done():
                task.result()  # re-raises the start-up error
                raise RuntimeError("uvicorn exited during start-up")
            await asyncio.sleep(0.02)
        yield f"http://{LOCALHOST}:{port}"
    finally:
        server.should_exit = True
        await task
