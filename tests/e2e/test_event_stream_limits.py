"""Event streams through the gateway are limited only by the notifier's connection cap (and
the gateway's own, from its open-file limit), never by a small connection pool; a stream
refused at either cap gets its 503 with `Retry-After` at once."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator

import httpx
import pytest
from pydantic import SecretStr

from imagetron.stack import EmbeddedStack
from imagetron.testing import gateway_replica_settings, serving
from imagetron_gateway.bootstrap import create_app as create_gateway
from imagetron_gateway.settings import GatewaySettings
from imagetron_notifier.bootstrap import create_app as create_notifier
from imagetron_notifier.settings import NotifierSettings

pytestmark = pytest.mark.e2e

#: More than the 100 connections an httpx client pools by default.
STREAMS = 120


def _gateway(stack: EmbeddedStack, notifier_url: str, **overrides: object) -> GatewaySettings:
    return gateway_replica_settings(
        stack, notifier_url=notifier_url, rate_limit_per_key=10_000, **overrides
    )


def _notifier(stack: EmbeddedStack, max_connections: int) -> NotifierSettings:
    nats = stack.nats_settings("notifier")
    return NotifierSettings(
        nats_url=nats.nats_url,
        nats_user=nats.nats_user,
        nats_password=nats.nats_password,
        events_token_secret=SecretStr(stack.secrets.events_token_secret),
        max_connections=max_connections,
        log_json=False,
    )


@contextlib.asynccontextmanager
async def _streams(client: httpx.AsyncClient, count: int) -> AsyncIterator[list[httpx.Response]]:
    """`count` event streams held open (their responses, headers read)."""
    async with contextlib.AsyncExitStack() as held:
        streams = [client.stream("GET", "/api/v1/events") for _ in range(count)]
        opened = await asyncio.gather(*(held.enter_async_context(s) for s in streams))
        yield list(opened)


async def test_streams_beyond_a_pool_pass_and_the_notifiers_cap_answers_at_once(stack, clients):
    artist, _ = clients
    unpooled = httpx.Limits(max_connections=None)
    async with (
        serving(create_notifier(_notifier(stack, STREAMS))) as notifier_url,
        serving(create_gateway(_gateway(stack, notifier_url))) as gateway_url,
        httpx.AsyncClient(
            base_url=gateway_url, headers=artist.headers, timeout=30, limits=unpooled
        ) as client,
        _streams(client, STREAMS) as opened,
    ):
        assert [r.status_code for r in opened] == [200] * STREAMS
        started = time.monotonic()
        refused = await client.get("/api/v1/events")
        waited = time.monotonic() - started
    assert refused.status_code == 503
    assert refused.headers["retry-after"] == "5"
    assert "maximum of 120 connections" in refused.json()["detail"]
    assert waited < 2.0  # not a pool's timeout


async def test_a_gateway_at_its_own_limit_answers_503_at_once(stack, clients):
    artist, _ = clients
    async with (
        serving(create_notifier(_notifier(stack, 100))) as notifier_url,
        serving(create_gateway(_gateway(stack, notifier_url, max_event_streams=2))) as gateway_url,
        httpx.AsyncClient(base_url=gateway_url, headers=artist.headers, timeout=30) as client,
    ):
        async with _streams(client, 2) as opened:
            assert [r.status_code for r in opened] == [200, 200]
            # Served after the request guard returned, a stream still says its limits.
            assert opened[1].headers["content-type"] == "text/event-stream; charset=utf-8"
            assert opened[1].headers["ratelimit-policy"].startswith('"per-key";q=10000;')
            assert opened[1].headers["ratelimit"].startswith('"per-key";r=99')
            refused = await client.get("/api/v1/events")
            assert refused.status_code == 503
            assert refused.headers["retry-after"] == "5"
            assert "maximum of 2 event streams" in refused.json()["detail"]
        # Streams that end give their place back (as soon as the gateway sees them close).
        deadline = time.monotonic() + 10
        while True:
            async with client.stream("GET", "/api/v1/events") as again:
                if again.status_code == 200:
                    break
            assert time.monotonic() < deadline, "the ended streams still count"
            await asyncio.sleep(0.05)
