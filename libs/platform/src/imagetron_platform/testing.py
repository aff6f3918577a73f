"""Test support for services' own tests: an in-process client that runs an app's lifespan.

`httpx.ASGITransport` neither runs the lifespan nor passes its state to requests (servers
such as uvicorn copy it into every request's scope); `lifespan_client` does both, so
handlers read `request.state` in tests as they do in production. `state` stays the dict
the lifespan yielded: a test may replace an entry to change what later requests see.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, MutableMapping
from dataclasses import dataclass
from typing import Any

import httpx
from fastapi import FastAPI
from starlette.types import Receive, Scope, Send


@dataclass
class LifespanClient:
    client: httpx.AsyncClient
    state: MutableMapping[str, Any]


@contextlib.asynccontextmanager
async def lifespan_client(
    app: FastAPI, base_url: str = "http://testserver"
) -> AsyncIterator[LifespanClient]:
    async with app.router.lifespan_context(app) as yielded:
        state: MutableMapping[str, Any] = dict(yielded or {})

        async def with_state(scope: Scope, receive: Receive, send: Send) -> None:
            await app({**scope, "state": dict(state)}, receive, send)

        transport = httpx.ASGITransport(app=with_state)
        async with httpx.AsyncClient(transport=transport, base_url=base_url) as client:
            yield LifespanClient(client, state)
