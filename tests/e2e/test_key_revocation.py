"""A key revoked on one gateway replica is refused at once on another that had it cached,
and the event stream opened with it on that other replica ends."""

from __future__ import annotations

import asyncio

import httpx
import pytest
from httpx_sse import aconnect_sse

from imagetron.testing import gateway_replica_settings, serving
from imagetron_gateway.bootstrap import create_app

pytestmark = pytest.mark.e2e


async def test_a_key_revoked_on_one_replica_stops_on_every_replica(stack, clients):
    artist, _ = clients
    created = (await artist.post("/api/v1/keys", json={"name": "two replicas"})).json()
    key = {"Authorization": f"Bearer {created['api_key']}"}
    replica = gateway_replica_settings(stack, api_key_cache_seconds=300)
    async with (
        serving(create_app(replica)) as other_url,
        httpx.AsyncClient(base_url=other_url, headers=key, timeout=30) as other,
    ):
        assert (await other.get("/api/v1/me")).status_code == 200  # now cached for 5 min
        ended = asyncio.Event()

        async def follow() -> None:
            async with aconnect_sse(other, "GET", "/api/v1/events", timeout=None) as source:
                assert source.response.status_code == 200
                connected.set()
                async for _ in source.aiter_sse():
                    pass
            ended.set()

        connected = asyncio.Event()
        stream = asyncio.create_task(follow())
        try:
            await asyncio.wait_for(connected.wait(), 10)
            revoked = await artist.delete(f"/api/v1/keys/{created['key']['id']}")
            assert revoked.status_code == 204
            await asyncio.wait_for(ended.wait(), 10)
            refused = await other.get("/api/v1/me")
            assert refused.status_code == 401
        finally:
            stream.cancel()
            await asyncio.gather(stream, return_exceptions=True)
