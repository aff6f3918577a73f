"""One embedded stack for every end-to-end test, and the HTTP/SSE clients they drive it
with. The tests see Imagetron only as a user does: over HTTP and SSE."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator

import httpx
import pytest

from imagetron.stack import EmbeddedStack, StackPorts
from imagetron.testing import EventLog, listen, server_root


@pytest.fixture(scope="session")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EmbeddedStack]:
    # Schemathesis (test_contract_fuzzing.py) sends thousands of requests with one key.
    unlimited = {
        "IMAGETRON_RATE_LIMIT_PER_KEY": "1000000",
        "IMAGETRON_RATE_LIMIT_PER_ADDRESS": "1000000",
    }
    with (
        server_root(tmp_path_factory, "imagetron") as root,
        EmbeddedStack(
            root, StackPorts.free(), admin_api_key="itk_e2e-admin-key", extra_env=unlimited
        ) as running,
    ):
        yield running


@pytest.fixture
async def clients(
    stack: EmbeddedStack,
) -> AsyncIterator[tuple[httpx.AsyncClient, httpx.AsyncClient]]:
    """Two new users: the artist under test and a stranger who must see none of it."""
    admin_headers = {"Authorization": f"Bearer {stack.admin_api_key}"}
    async with httpx.AsyncClient(base_url=stack.gateway_url, headers=admin_headers) as admin:
        artist = await admin.post("/api/v1/users", json={"name": "artist"})
        assert artist.status_code == 201, artist.text
        stranger = await admin.post("/api/v1/users", json={"name": "stranger"})
        assert stranger.status_code == 201, stranger.text
    async with (
        httpx.AsyncClient(
            base_url=stack.gateway_url,
            headers={"Authorization": f"Bearer {artist.json()['api_key']}"},
            timeout=30,
        ) as artist_client,
        httpx.AsyncClient(
            base_url=stack.gateway_url,
            headers={"Authorization": f"Bearer {stranger.json()['api_key']}"},
            timeout=30,
        ) as stranger_client,
    ):
        yield artist_client, stranger_client


@pytest.fixture
async def events(clients: tuple[httpx.AsyncClient, httpx.AsyncClient]) -> AsyncIterator[EventLog]:
    """The artist's event stream, connected before the test acts."""
    artist, _ = clients
    log, connected = EventLog(), asyncio.Event()
    listener = asyncio.create_task(listen(artist, log, connected))
    try:
        await asyncio.wait_for(connected.wait(), 10)
        yield log
    finally:
        listener.cancel()
        await asyncio.gather(listener, return_exceptions=True)
