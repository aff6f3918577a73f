"""A service that fails unexpectedly is the gateway's upstream failing: 502 problem+json that
names the service and the correlation id of the service's log line, never the exception.

The gateway's real `RpcClient` asks a service answering through the platform's
`rpc_handler`, over the in-memory broker and over a real NATS server."""

from __future__ import annotations

import dataclasses
import uuid
from collections.abc import AsyncIterator

import pytest
from faststream.nats import NatsBroker, TestNatsBroker

from imagetron.servers import NatsServer
from imagetron_contracts import streams
from imagetron_contracts.models.prompts import Prompt, PromptQuery
from imagetron_platform import correlation
from imagetron_platform.messaging import CorrelationMiddleware
from imagetron_platform.rpc import RpcClient, rpc_handler

SECRET = "dsn=postgresql://imagetron:hunter2@db"


def failing_prompts_service(broker: NatsBroker, seen: list[str | None]) -> None:
    """`rpc.prompts.get` answered by a handler that raises, as a bug would."""

    @broker.subscriber(streams.RPC_PROMPTS_GET, queue="prompts")
    @rpc_handler
    async def get_prompt(query: PromptQuery) -> Prompt:
        seen.append(correlation.current())  # what the service's log line carries
        raise RuntimeError(f"connection lost to {SECRET}")


@pytest.fixture(params=["memory", pytest.param("nats", marks=pytest.mark.integration)])
async def service_client(
    request: pytest.FixtureRequest,
) -> AsyncIterator[tuple[RpcClient, list[str | None]]]:
    seen: list[str | None] = []
    if request.param == "memory":
        broker = NatsBroker(middlewares=(CorrelationMiddleware,))
        failing_prompts_service(broker, seen)
        async with TestNatsBroker(broker) as test_broker:
            yield RpcClient(test_broker, timeout=5.0), seen
        return
    # A NATS server of this test's own: the prompts service of the prompts tests stays on the
    # session's shared one, in the same queue group, and would answer some of these requests.
    server = NatsServer(request.getfixturevalue("tmp_path") / "nats").start()
    try:
        service = NatsBroker(server.url, middlewares=(CorrelationMiddleware,))
        failing_prompts_service(service, seen)
        gateway = NatsBroker(server.url, middlewares=(CorrelationMiddleware,))
        await service.start()
        try:
            await gateway.connect()
            try:
                yield RpcClient(gateway, timeout=5.0), seen
            finally:
                await gateway.stop()
        finally:
            await service.stop()
    finally:
        server.stop()


def use_rpc(gateway, rpc: RpcClient) -> None:
    context = gateway.state["context"]
    gateway.state["context"] = dataclasses.replace(context, rpc=rpc)


async def test_a_service_failing_unexpectedly_is_a_502_that_leaks_nothing(
    gateway, service_client: tuple[RpcClient, list[str | None]]
) -> None:
    rpc, seen = service_client
    use_rpc(gateway, rpc)

    response = await gateway.client.get(
        f"/api/v1/prompts/{uuid.uuid4()}", headers=gateway.auth("ada")
    )

    assert response.status_code == 502, response.text
    assert response.headers["content-type"] == "application/problem+json"
    problem = response.json()
    assert (problem["status"], problem["title"]) == (502, "Bad gateway")
    request_id = response.headers["x-request-id"]
    assert seen == [request_id], "the service's log line carries the id the client is told"
    assert problem["detail"] == (
        f"The prompts service failed unexpectedly on {streams.RPC_PROMPTS_GET}; its log and "
        f"error report carry correlation id {request_id}."
    )
    for internal in ("hunter2", "RuntimeError", "Traceback", "connection lost"):
        assert internal not in response.text


async def test_each_request_is_told_its_own_correlation_id(
    gateway, service_client: tuple[RpcClient, list[str | None]]
) -> None:
    rpc, seen = service_client
    use_rpc(gateway, rpc)
    sent = [str(uuid.uuid4()), str(uuid.uuid4())]

    details = []
    for request_id in sent:
        response = await gateway.client.get(
            f"/api/v1/prompts/{uuid.uuid4()}",
            headers={**gateway.auth("ada"), "X-Request-ID": request_id},
        )
        assert response.headers["x-request-id"] == request_id
        details.append(response.json()["detail"])

    assert seen == sent
    assert [request_id in detail for request_id, detail in zip(sent, details, strict=True)] == [
        True,
        True,
    ]
