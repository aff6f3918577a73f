"""`rpc_handler` always answers: result, the handler's problem, or 422 for a bad request."""

from __future__ import annotations

import pytest
from faststream.nats import NatsBroker, TestNatsBroker
from pydantic import BaseModel

from imagetron_contracts.models.common import RpcReply
from imagetron_platform.errors import NotFound
from imagetron_platform.rpc import rpc_handler


class Double(BaseModel):
    x: int


class Doubled(BaseModel):
    y: int


@pytest.fixture
async def broker():
    broker = NatsBroker()

    @broker.subscriber("rpc.double")
    @rpc_handler
    async def double(request: Double) -> Doubled:  # a return annotation, as handlers have
        if request.x == 0:
            raise NotFound("nothing to double")
        return Doubled(y=2 * request.x)

    async with TestNatsBroker(broker) as test_broker:
        yield test_broker


async def ask(broker, body) -> RpcReply:
    return RpcReply.model_validate_json((await broker.request(body, "rpc.double")).body)


async def test_result_of_a_handler_with_a_return_annotation(broker):
    assert await ask(broker, {"x": 2}) == RpcReply(result={"y": 4})


async def test_problem_raised_by_the_handler(broker):
    reply = await ask(broker, {"x": 0})
    assert reply.problem is not None
    assert (reply.problem.status, reply.problem.detail) == (404, "nothing to double")


@pytest.mark.parametrize("body", [{"x": "two"}, {}, b"not json", [1, 2]])
async def test_malformed_request_is_answered_422(broker, body):
    reply = await ask(broker, body)
    assert reply.problem is not None
    assert reply.problem.status == 422
    assert reply.problem.errors
