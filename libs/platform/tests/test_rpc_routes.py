"""RPC subscribers from a table: each handler's request is its first parameter, the rest are
injected by name, and `uow` is a fresh unit of work for every request."""

from __future__ import annotations

from dataclasses import dataclass, field
from itertools import count

import pytest
from faststream.nats import NatsBroker, TestNatsBroker
from faststream.specification import AsyncAPI
from pydantic import BaseModel

from imagetron_contracts.models.common import RpcReply
from imagetron_platform.rpc import RpcRoute, inject, register_rpc


class Ask(BaseModel):
    x: int


class Answer(BaseModel):
    y: int
    uow: int


@dataclass
class Deps:
    factor: int = 3
    made: count = field(default_factory=count)

    def new_uow(self) -> int:
        return next(self.made)


async def multiply(request: Ask, uow: int, factor: int) -> Answer:
    """Multiply by the factor.

    A second paragraph that the description leaves out."""
    return Answer(y=request.x * factor, uow=uow)


async def needs_a_clock(request: Ask, clock: object) -> Answer:
    return Answer(y=request.x, uow=0)


async def defaults_are_fine(request: Ask, missing: int = 7) -> Answer:
    return Answer(y=request.x + missing, uow=0)


@pytest.fixture
async def broker():
    broker = NatsBroker()
    register_rpc(
        broker,
        "things",
        [RpcRoute("rpc.things.multiply", multiply), RpcRoute("rpc.things.add", defaults_are_fine)],
        Deps(),
    )
    async with TestNatsBroker(broker) as test_broker:
        yield test_broker


async def ask(broker, subject, body) -> RpcReply:
    return RpcReply.model_validate_json((await broker.request(body, subject)).body)


async def test_dependencies_are_injected_by_name_with_a_fresh_unit_of_work_per_request(broker):
    first = await ask(broker, "rpc.things.multiply", {"x": 2})
    second = await ask(broker, "rpc.things.multiply", {"x": 5})
    assert first.result == {"y": 6, "uow": 0}
    assert second.result == {"y": 15, "uow": 1}


async def test_a_parameter_with_a_default_needs_no_dependency(broker):
    assert (await ask(broker, "rpc.things.add", {"x": 1})).result == {"y": 8, "uow": 0}


async def test_a_malformed_request_is_still_a_422(broker):
    reply = await ask(broker, "rpc.things.multiply", {"x": "many"})
    assert reply.problem is not None
    assert reply.problem.status == 422


def test_a_missing_dependency_fails_at_registration():
    with pytest.raises(TypeError, match="needs_a_clock needs 'clock'"):
        inject(needs_a_clock, Deps())


def test_the_documents_show_the_request_model_title_and_summary():
    broker = NatsBroker()
    register_rpc(broker, "things", [RpcRoute("rpc.things.multiply", multiply)], Deps())
    doc = AsyncAPI(broker, schema_version="3.0.0").to_specification().to_jsonable()
    (channel,) = doc["channels"].values()
    assert channel["address"] == "rpc.things.multiply"
    (operation,) = doc["operations"].values()
    assert operation["action"] == "receive"
    assert "Ask" in doc["components"]["schemas"]
    assert "Answer" not in doc["components"]["schemas"]  # replies are RpcReply dicts
    assert "things_handle_rpc_things_multiply" in str(doc)
    assert "Multiply by the factor. Replies with an RpcReply whose result is an Answer." in str(doc)
