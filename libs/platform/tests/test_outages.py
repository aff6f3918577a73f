"""A database that cannot be reached is a 503 with Retry-After, over RPC and over HTTP;
a bug stays a 500."""

from __future__ import annotations

import asyncpg
import httpx
import nats.errors
import pytest
import sqlalchemy.exc
from fastapi import FastAPI
from faststream.nats import NatsBroker, TestNatsBroker
from pydantic import BaseModel
from sqlalchemy import text

from imagetron.servers import free_port
from imagetron_contracts.models.common import RpcReply
from imagetron_platform.db import make_engine
from imagetron_platform.errors import ProblemError, ServiceUnavailable
from imagetron_platform.http import install_platform
from imagetron_platform.outages import dependency_outage
from imagetron_platform.rpc import rpc_handler


class Query(BaseModel):
    broken: bool = False


class Answer(BaseModel):
    value: int


@pytest.fixture
def engine():
    # Nothing listens on this port: every connect is refused, as when PostgreSQL is down.
    url = f"postgresql+asyncpg://imagetron:x@127.0.0.1:{free_port()}/imagetron"
    return make_engine(url, connect_timeout_seconds=2)


async def test_rpc_answers_503_when_the_database_is_down(engine):
    broker = NatsBroker()

    @broker.subscriber("rpc.query")
    @rpc_handler
    async def query(request: Query) -> Answer:
        if request.broken:
            raise KeyError("a bug")
        async with engine.connect() as conn:
            return Answer(value=(await conn.execute(text("select 1"))).scalar_one())

    async with TestNatsBroker(broker) as test_broker:
        down = RpcReply.model_validate_json((await test_broker.request({}, "rpc.query")).body)
        bug = RpcReply.model_validate_json(
            (await test_broker.request({"broken": True}, "rpc.query")).body
        )
    assert down.problem is not None
    assert down.problem.status == 503
    assert "database" in (down.problem.detail or "")
    assert isinstance(ProblemError.from_problem(down.problem), ServiceUnavailable)
    assert bug.problem is not None
    assert bug.problem.status == 500


async def test_http_answers_503_with_retry_after_when_the_database_is_down(engine):
    app = FastAPI()
    install_platform(app, "test")

    @app.get("/value")
    async def value() -> int:
        async with engine.connect() as conn:
            return int((await conn.execute(text("select 1"))).scalar_one())

    @app.get("/bug")
    async def bug() -> int:
        raise KeyError("a bug")

    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
        down = await client.get("/value")
        broken = await client.get("/bug")
        forwarded = ServiceUnavailable("NATS is down")
    assert down.status_code == 503
    assert down.headers["content-type"] == "application/problem+json"
    assert int(down.headers["retry-after"]) == forwarded.retry_after_seconds
    assert "database" in down.json()["detail"]
    assert broken.status_code == 500
    assert "retry-after" not in broken.headers


def test_the_outage_names_the_dependency_it_came_through():
    # NATS down: the client library's own error.
    outage = dependency_outage(nats.errors.NoServersError())
    assert outage is not None
    assert "cannot reach NATS" in outage.detail
    # The driver's error wrapped by SQLAlchemy (only in `orig`, not in the cause chain).
    full = asyncpg.exceptions.TooManyConnectionsError("too many clients")
    wrapped = sqlalchemy.exc.DBAPIError("select 1", {}, full)
    outage = dependency_outage(wrapped)
    assert outage is not None
    assert "cannot reach the database" in outage.detail
    # A connection SQLAlchemy found broken, whatever the driver said.
    lost = sqlalchemy.exc.DBAPIError("select 1", {}, ValueError("eof"), connection_invalidated=True)
    assert dependency_outage(lost) is not None
    # A refused socket of no library we know.
    outage = dependency_outage(ConnectionRefusedError("refused"))
    assert outage is not None
    assert "cannot reach a dependency" in outage.detail
    # A bug is no outage, even from inside the database library.
    assert dependency_outage(sqlalchemy.exc.DBAPIError("select 1", {}, ValueError("x"))) is None
    assert dependency_outage(KeyError("a bug")) is None
