"""Event streams through the gateway are limited only by the notifier's connection cap (and
the gateway's own, from its open-file limit), never by a small connection pool; a stream
refused at either cap gets its 503 with `Retry-After` at once. One owner's streams that want
the same events share one connection to the notifier; the others have their own."""

from __future__ import annotations

import asyncio
import contextlib
import time
import uuid
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
async def _streams(
    client: httpx.AsyncClient, count: int, *, distinct: bool = False
) -> AsyncIterator[list[httpx.Response]]:
    """`count` event streams held open (their responses, headers read); `distinct`: each
    filtered to a task of its own, so that none shares the notifier's stream of another."""
    async with contextlib.AsyncExitStack() as held:
        streams = [
            client.stream(
                "GET", "/api/v1/events", params={"task_id": str(uuid.uuid4())} if distinct else None
            )
            for _ in range(count)
        ]
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
        _streams(client, STREAMS, distinct=True) as opened,
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


async def _event_of(lines: AsyncIterator[str], kind: str) -> int:
    """Reads a stream's `lines` until an event of type `kind`: its id. (The same iterator
    each time: httpx closes a response whose line iterator is dropped.)"""
    last_id = None
    async for line in lines:
        if line.startswith("id: "):
            last_id = int(line[4:])
        elif line == f"event: {kind}":
            assert last_id is not None
            return last_id
    raise AssertionError(f"the stream ended before a {kind} event")


async def test_one_owners_streams_share_one_connection_to_the_notifier(stack, clients):
    """A notifier with room for one connection serves twenty tabs of one artist: the event
    reaches each; a tab resuming from an older id needs a connection of its own (refused
    here, the notifier's 503 passed on), one resuming where the shared stream is joins it."""
    artist, _ = clients
    tabs = 20
    unpooled = httpx.Limits(max_connections=None)
    async with (
        serving(create_notifier(_notifier(stack, 1))) as notifier_url,
        serving(create_gateway(_gateway(stack, notifier_url))) as gateway_url,
        httpx.AsyncClient(
            base_url=gateway_url, headers=artist.headers, timeout=30, limits=unpooled
        ) as client,
        _streams(client, tabs) as opened,
    ):
        assert [r.status_code for r in opened] == [200] * tabs
        lines = [r.aiter_lines() for r in opened]
        created = await client.post("/api/v1/prompts", json={"text": "twenty tabs, one stream"})
        assert created.status_code == 201, created.text
        async with asyncio.timeout(20):
            ids = await asyncio.gather(*(_event_of(t, "prompt.created") for t in lines))
        assert len(set(ids)) == 1
        # A filter of its own: another stream from the notifier, which has no room for it.
        filtered = await _refusal(client, params={"types": "prompt.deleted"})
        assert "maximum of 1 connections" in filtered.json()["detail"]
        assert filtered.headers["retry-after"] == "5"
        # Behind the shared stream: it needs a replay of its own.
        await _refusal(client, headers={"Last-Event-ID": "0"})
        async with client.stream(
            "GET", "/api/v1/events", headers={"Last-Event-ID": str(ids[0])}
        ) as joined:
            assert joined.status_code == 200
            deleted = await client.delete(f"/api/v1/prompts/{created.json()['id']}")
            assert deleted.status_code in (200, 204), deleted.text
            async with asyncio.timeout(20):
                assert await _event_of(joined.aiter_lines(), "prompt.deleted") > ids[0]


async def _refusal(client: httpx.AsyncClient, **request: object) -> httpx.Response:
    """A stream request that must be refused with 503 (a stream, should it be accepted)."""
    async with client.stream("GET", "/api/v1/events", **request) as answer:  # type: ignore[arg-type]
        assert answer.status_code == 503
        await answer.aread()
        return answer
