"""`rpc_handler` always answers: result, the handler's problem, 422 for a bad request, or
"internal error" for a failure it cannot name (logged with its traceback, and reported to
Sentry when it is configured)."""

from __future__ import annotations

import logging

import pytest
import sentry_sdk
from faststream.nats import NatsBroker, TestNatsBroker
from pydantic import BaseModel, SecretStr
from sentry_sdk.envelope import Envelope
from sentry_sdk.transport import Transport

from imagetron_contracts.models.common import RpcReply
from imagetron_platform.errors import NotFound
from imagetron_platform.messaging import CorrelationMiddleware
from imagetron_platform.observability import sentry_options
from imagetron_platform.rpc import rpc_handler
from imagetron_platform.settings import ServiceSettings

SECRET = "password=hunter2"


class Double(BaseModel):
    x: int


class Doubled(BaseModel):
    y: int


@pytest.fixture
async def broker():
    broker = NatsBroker(middlewares=(CorrelationMiddleware,))

    @broker.subscriber("rpc.double")
    @rpc_handler
    async def double(request: Double) -> Doubled:  # a return annotation, as handlers have
        if request.x == 0:
            raise NotFound("nothing to double")
        if request.x < 0:
            raise RuntimeError(f"cannot connect with {SECRET}")
        return Doubled(y=2 * request.x)

    async with TestNatsBroker(broker) as test_broker:
        yield test_broker


async def ask(broker, body, correlation_id: str | None = None) -> RpcReply:
    answer = await broker.request(body, "rpc.double", correlation_id=correlation_id)
    return RpcReply.model_validate_json(answer.body)


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


async def test_an_unexpected_failure_is_an_internal_error_that_keeps_its_text_to_the_log(
    broker, caplog
):
    with caplog.at_level(logging.ERROR, logger="imagetron_platform.rpc"):
        reply = await ask(broker, {"x": -1})

    assert reply.problem is not None
    assert (reply.problem.status, reply.problem.title) == (500, "Internal error")
    assert "internal error" in (reply.problem.detail or "").lower()
    assert SECRET not in reply.model_dump_json()
    assert "Traceback" not in reply.model_dump_json()
    [logged] = [r for r in caplog.records if r.levelno >= logging.ERROR]
    assert logged.exc_info is not None
    assert SECRET in str(logged.exc_info[1])


class _Captured(Transport):
    def __init__(self, options=None) -> None:
        super().__init__(options)
        self.events: list[dict] = []

    def capture_envelope(self, envelope: Envelope) -> None:
        self.events += [item.payload.json for item in envelope.items if item.type == "event"]


async def test_an_unexpected_failure_is_reported_to_sentry_with_its_correlation_id(broker):
    """As `init_observability` configures Sentry (its default logging integration reports
    the handler's log line); the transport keeps the events instead of sending them."""
    settings = ServiceSettings(sentry_dsn=SecretStr("https://key@sentry.invalid/1"))
    transport = _Captured()
    scope = sentry_sdk.get_global_scope()
    before = scope.client
    options = {**sentry_options("test", settings), "transport": transport}
    try:
        # Nothing patched beyond logging (Starlette, httpx...) outlives this test.
        sentry_sdk.init(**options, auto_enabling_integrations=False)
        reply = await ask(broker, {"x": -1}, correlation_id="corr-sentry-1")
        sentry_sdk.flush()
    finally:
        scope.set_client(before)

    assert reply.problem is not None
    assert reply.problem.status == 500
    [event] = transport.events
    [exception] = event["exception"]["values"]
    assert (exception["type"], exception["value"]) == (
        "RuntimeError",
        f"cannot connect with {SECRET}",
    )
    assert exception["stacktrace"]["frames"], "the traceback is reported"
    assert event["tags"]["correlation_id"] == "corr-sentry-1"
