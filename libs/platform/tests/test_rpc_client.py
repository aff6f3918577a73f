"""`RpcClient.call` waits the client's timeout, or the one a call asks for (real NATS)."""

from __future__ import annotations

import asyncio

import pytest
from faststream.nats import NatsBroker
from pydantic import BaseModel

from imagetron_platform import correlation
from imagetron_platform.errors import BadGateway, ServiceTimeout, ServiceUnavailable
from imagetron_platform.messaging import CorrelationMiddleware
from imagetron_platform.rpc import RpcClient, rpc_handler

pytestmark = pytest.mark.integration


class Nap(BaseModel):
    seconds: float


class Woke(BaseModel):
    slept: float


@pytest.fixture
async def slow_service(nats_url):
    broker = NatsBroker(nats_url, middlewares=(CorrelationMiddleware,))

    @broker.subscriber("rpc.test.nap", queue="test")
    @rpc_handler
    async def nap(request: Nap) -> Woke:
        if request.seconds < 0:
            raise ValueError(f"negative nap in {__file__}")
        await asyncio.sleep(request.seconds)
        return Woke(slept=request.seconds)

    @broker.subscriber("rpc.test.garbage", queue="test")
    async def garbage(_: object) -> str:
        return "this is not an RPC reply"

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


async def test_a_subject_nobody_serves_is_503_and_a_malformed_reply_502(
    slow_service: NatsBroker, caplog: pytest.LogCaptureFixture
) -> None:
    client = RpcClient(slow_service, timeout=2.0)
    with pytest.raises(ServiceUnavailable) as nobody:
        await client.call("rpc.test.nobody", Nap(seconds=0), Woke)
    assert nobody.value.status == 503
    assert "No service is listening on rpc.test.nobody" in nobody.value.detail
    # A reply that is not what the caller expects is the service's fault, not the caller's;
    # the caller is told which service and where to look, not the reply's fields and values.
    correlation.bind("corr-malformed-1")
    try:
        with caplog.at_level("ERROR"), pytest.raises(BadGateway) as malformed:
            await client.call("rpc.test.nap", Nap(seconds=0), Nap)
        with pytest.raises(BadGateway) as garbage:
            await client.call("rpc.test.garbage", Nap(seconds=0), Woke)
    finally:
        correlation.bind(None)
    assert malformed.value.status == garbage.value.status == 502
    assert malformed.value.detail == (
        "The test service answered rpc.test.nap with a reply its contract does not allow; "
        "the logs carry correlation id corr-malformed-1."
    )
    assert "slept" not in malformed.value.detail
    assert garbage.value.detail.startswith("The test service answered rpc.test.garbage")
    assert "malformed reply on rpc.test.nap" in caplog.text
    assert "seconds" in caplog.text  # the validation error, for the operator


async def test_a_service_that_fails_unexpectedly_is_a_bad_gateway_to_its_caller(slow_service):
    """The service answers 500 (`rpc_handler`): to the caller its upstream failed. The detail
    names the service and the correlation id its log line carries, not the exception."""
    client = RpcClient(slow_service, timeout=2.0)
    correlation.bind("corr-upstream-1")
    try:
        with pytest.raises(BadGateway) as failed:
            await client.call("rpc.test.nap", Nap(seconds=-1), Woke)
    finally:
        correlation.bind(None)
    assert failed.value.status == 502
    assert failed.value.detail == (
        "The test service failed unexpectedly on rpc.test.nap; its log and error report "
        "carry correlation id corr-upstream-1."
    )
