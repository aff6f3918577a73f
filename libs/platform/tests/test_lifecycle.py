"""The one start/stop sequence every service runs (`ServiceLifecycle`), on a real NATS
server: the order of its steps, readiness, and what happens when a step fails."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator

import pytest
from faststream.nats import NatsBroker
from sqlalchemy import MetaData

from imagetron_platform import lifecycle as lifecycle_module
from imagetron_platform.db import outbox_table
from imagetron_platform.lifecycle import ServiceLifecycle
from imagetron_platform.messaging import ServiceBroker
from imagetron_platform.outbox import OutboxRelay
from imagetron_platform.settings import DatabaseSettings
from imagetron_platform.testing import lifespan_client

pytestmark = pytest.mark.integration


async def test_start_and_stop_run_in_order_and_readiness_names_what_fails(nats_url):
    broker = NatsBroker(nats_url)
    lifecycle = ServiceLifecycle("test", broker)
    steps: list[str] = []

    async def hook() -> None:
        steps.append(f"before connect (connected: {await broker.ping(timeout=0.5)})")

    async def loop() -> None:
        steps.append("loop")
        try:
            await asyncio.Event().wait()
        finally:
            steps.append("loop cancelled")

    async def failing_check() -> None:
        raise ConnectionError("bucket gone")

    @contextlib.asynccontextmanager
    async def state() -> AsyncIterator[dict[str, str]]:
        steps.append(f"state (connected: {await broker.ping(timeout=0.5)})")
        yield {"greeting": "hello"}
        steps.append("state left")

    for name in ("first", "second"):

        async def close(name: str = name) -> None:
            steps.append(f"closed {name}")

        lifecycle.close_on_shutdown(close)
    lifecycle.before_connect(hook)
    lifecycle.background("loop", loop)
    lifecycle.check("bucket", failing_check)
    lifecycle.wake_relay()  # no outbox: nothing to wake, no error
    app = lifecycle.app(title="test", state=state)
    async with lifespan_client(app) as running:
        assert running.state == {"greeting": "hello"}
        await asyncio.sleep(0)  # the loop's first step
        ready = await running.client.get("/readyz")
        assert ready.status_code == 503
        assert ready.json()["checks"] == {
            "nats": "ok",
            "bucket": "failing: ConnectionError('bucket gone')",
        }
    # The loop task and the state start together (the task runs at the next await).
    assert steps[0] == "before connect (connected: False)"
    assert set(steps[1:3]) == {"state (connected: True)", "loop"}
    assert steps[3:] == [
        "state left",
        "loop cancelled",
        "closed second",
        "closed first",
    ]
    assert not await broker.ping(timeout=0.5)


async def test_a_service_without_state_yields_an_empty_one(nats_url):
    app = ServiceLifecycle("test", NatsBroker(nats_url)).app(title="test")
    async with lifespan_client(app) as running:
        assert running.state == {}
        assert (await running.client.get("/readyz")).status_code == 200


async def test_a_failing_start_up_step_still_closes_what_was_registered(nats_url):
    broker = NatsBroker(nats_url)
    lifecycle = ServiceLifecycle("test", broker)
    closed: list[str] = []

    async def migrate() -> None:
        raise RuntimeError("migration failed")

    async def close() -> None:
        closed.append("http client")

    lifecycle.close_on_shutdown(close)
    lifecycle.before_connect(migrate)
    with pytest.raises(RuntimeError, match="migration failed"):
        async with lifecycle.running():
            pytest.fail("the service must not run")
    assert closed == ["http client"]
    assert not await broker.ping(timeout=0.5)  # it never connected


def test_an_outbox_needs_its_database():
    with pytest.raises(ValueError, match="an outbox needs the database"):
        ServiceLifecycle("test", NatsBroker(), outbox=outbox_table(MetaData(schema="t")))


class StuckRelay(OutboxRelay):
    """A relay whose last pass fails (the database went away at shutdown)."""

    def __init__(self) -> None:
        self._wakeup = asyncio.Event()

    async def run(self) -> None:
        await asyncio.Event().wait()

    async def publish_pending(self) -> int:
        raise ConnectionError("database gone")


async def test_a_failing_last_relay_pass_does_not_stop_shutdown(nats_url, caplog):
    broker = NatsBroker(nats_url)
    lifecycle = ServiceLifecycle("test", broker)
    lifecycle.relay = StuckRelay()
    with caplog.at_level(logging.WARNING, logger=lifecycle_module.__name__):
        async with lifecycle.running():
            pass
    assert "the outbox relay's last pass failed" in caplog.text
    assert not await broker.ping(timeout=0.5)


def test_a_service_owning_a_schema_is_built_from_its_settings_without_connecting():
    settings = DatabaseSettings(
        database_url="postgresql+asyncpg://u:p@127.0.0.1:1/db", outbox_poll_seconds=0.5
    )
    outbox = outbox_table(MetaData(schema="t"))
    lifecycle, database = ServiceLifecycle.with_database("test", settings, outbox=outbox)
    assert lifecycle.database is database
    assert database.engine.url.port == 1
    assert set(lifecycle.readiness) == {"nats", "database"}
    assert lifecycle.relay is not None
    assert lifecycle.relay._poll_seconds == 0.5
    assert isinstance(lifecycle.broker, ServiceBroker)
    # Without an outbox (the gateway) there is no relay to run.
    plain, _ = ServiceLifecycle.with_database("test", settings)
    assert plain.relay is None


async def test_a_service_app_asks_nothing_of_opentelemetry_per_request(monkeypatch) -> None:
    """No OpenTelemetry provider is configured anywhere: FastAPI's native telemetry asked
    for one (three environment lookups) on every request, 5 % of a callback's CPU."""
    from opentelemetry import metrics, trace

    asked: list[str] = []
    for module, name in ((trace, "get_tracer_provider"), (metrics, "get_meter_provider")):
        real = getattr(module, name)
        monkeypatch.setattr(module, name, lambda real=real, name=name: asked.append(name) or real())

    @contextlib.asynccontextmanager
    async def nothing() -> AsyncIterator[dict[str, object]]:
        yield {}

    app = lifecycle_module.service_app("test", title="t", lifespan=nothing, readiness={})
    async with lifespan_client(app) as running:
        for _ in range(3):
            assert (await running.client.get("/livez")).status_code == 200
    assert asked == []
