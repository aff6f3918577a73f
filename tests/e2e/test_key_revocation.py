"""A key revoked on one gateway replica is refused at once on another that had it cached,
and the event stream opened with it on that other replica ends."""

from __future__ import annotations

import asyncio

import httpx
import pytest
from httpx_sse import aconnect_sse
from pydantic import SecretStr

from imagetron.stack import EmbeddedStack
from imagetron.testing import serving
from imagetron_gateway.bootstrap import create_app
from imagetron_gateway.settings import GatewaySettings

pytestmark = pytest.mark.e2e


def _second_replica(stack: EmbeddedStack) -> GatewaySettings:
    nats = stack.nats_settings("gateway")
    return GatewaySettings(
        database_url=stack.infra.postgres.dsn,
        nats_url=nats.nats_url,
        nats_user=nats.nats_user,
        nats_password=nats.nats_password,
        notifier_url=f"http://127.0.0.1:{stack.ports.notifier}",
        events_token_secret=SecretStr(stack.secrets.events_token_secret),
        webhook_secret=SecretStr(stack.secrets.webhook_secret),
        webhook_token_key=SecretStr(stack.secrets.webhook_token_key),
        api_key_cache_seconds=300,
        log_json=False,
    )


async def test_a_key_revoked_on_one_replica_stops_on_every_replica(stack, clients):
    artist, _ = clients
    created = (await artist.post("/api/v1/keys", json={"name": "two replicas"})).json()
    key = {"Authorization": f"Bearer {created['api_key']}"}
    async with (
        serving(create_app(_second_replica(stack))) as other_url,
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
