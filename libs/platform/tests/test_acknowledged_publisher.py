"""`AcknowledgedPublisher` (the gateway's webhook publishes, without FastStream's publish
path): a FastStream consumer reads its messages as it reads FastStream's own (body,
correlation id), the stream's duplicate window applies, and FastStream's publish metrics
count it, failures included, on a real NATS server."""

from __future__ import annotations

import asyncio
import random

import pytest
from faststream.nats import JStream, NatsBroker, NatsMessage
from nats.js.errors import NoStreamResponseError
from pydantic import BaseModel

from imagetron_platform import correlation
from imagetron_platform.messaging import AcknowledgedPublisher
from imagetron_platform.metrics import REGISTRY


class Callback(BaseModel):
    provider: str
    body: dict[str, object]


def _sample(name: str, **labels: str) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0.0


async def test_consumers_read_it_as_faststreams_own_and_the_metrics_count_it(nats_url) -> None:
    stream, subject = f"ACK{random.randrange(10**9)}", f"ack{random.randrange(10**9)}"
    service = f"svc{random.randrange(10**9)}"
    broker = NatsBroker(nats_url, log_level=40)
    received: list[tuple[Callback, str | None]] = []
    arrived = asyncio.Event()

    @broker.subscriber(f"{subject}.goapi", stream=JStream(stream, subjects=[f"{subject}.>"]))
    async def handle(callback: Callback, message: NatsMessage) -> None:
        received.append((callback, message.correlation_id))
        arrived.set()

    await broker.start()
    try:
        publisher = AcknowledgedPublisher(broker, service, ack_seconds=5.0)
        payload = Callback(provider="goapi", body={"progress": 50, "café": "ü"})
        correlation.bind("req-123")
        for _ in range(2):  # a provider's retry of the same delivery
            await publisher.publish(
                f"{subject}.goapi",
                payload.model_dump_json().encode(),
                stream=stream,
                msg_id="delivery-1",
            )
        async with asyncio.timeout(5):
            await arrived.wait()
        await asyncio.sleep(0.2)  # a second copy, if any, would arrive meanwhile
        assert received == [(payload, "req-123")]

        where = {"app_name": service, "broker": "nats", "destination": f"{subject}.goapi"}
        assert _sample("faststream_published_messages_total", **where, status="success") == 2
        assert _sample("faststream_published_messages_duration_seconds_count", **where) == 2

        # A stream that does not take the subject: the caller hears it, the metrics count it.
        with pytest.raises(NoStreamResponseError):
            await publisher.publish(
                f"nowhere{random.randrange(10**9)}.goapi", b"{}", stream=stream, msg_id="x"
            )
        assert _sample("faststream_published_messages_total", **where, status="success") == 2
        errors = [
            sample
            for metric in REGISTRY.collect()
            if metric.name == "faststream_published_messages_exceptions"
            for sample in metric.samples
            if sample.labels.get("app_name") == service and sample.name.endswith("_total")
        ]
        assert [(s.labels["exception_type"], s.value) for s in errors] == [
            ("NoStreamResponseError", 1.0)
        ]
    finally:
        correlation.bind(None)
        await broker.stop()
