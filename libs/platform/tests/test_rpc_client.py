"""`RpcClient.call` waits the client's timeout, or the one a call asks for (real NATS)."""

from __future__ import annotations

import asyncio

import pytest
from faststream.nats import NatsBroker
from pydantic import BaseModel

from imagetron_platform.errors import ServiceTimeout
from imagetron_platform.rpc import RpcClient, rpc_handler

pytestmark = pytest.mark.integration


class Nap(BaseModel):
    seconds: float


class Woke(BaseModel):
    slept: float


@pytest.fixture
async def slow_service(nats_url):
    broker = NatsBroker(nats_url)

    @broker.subscriber("rpc.test.nap", queue="test")
    @rpc_handler
    async def nap(request: Nap) -> Woke:
        await asyncio.sleep(request.seconds)
        return Woke(slept=request.seconds)

    await broker.start()
    try:
        yield broker
    finally:
        await broker.stop()


async def test_a_slow_answer_is_a_timeout_with_the_clients_default(slow_service):
    client = RpcClient(slow_service, timeout=0.2)
    with pytest.raises(ServiceTimeout) as caught:
        await client.call("rpc.test.nap", Nap(seconds=0.6), Woke)
    assert "0.2 s" in caught.value.detail


async def test_a_call_may_wait_longer_than_the_default(slow_service):
    client = RpcClient(slow_service, timeout=0.2)
    woke = await client.call("rpc.test.nap", Nap(seconds=0.6), Woke, timeout=3.0)
    assert woke.slept == 0.6
    # ... and the default still holds for the next call.
    with pytest.raises(ServiceTimeout):
        await client.call("rpc.test.nap", Nap(seconds=0.6), Woke)
