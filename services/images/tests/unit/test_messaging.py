"""The broker's wiring: what it subscribes and sends matches the contract, and how job
outcomes become acks, delayed NAKs and give-ups."""

from __future__ import annotations

import asyncio
import json
import logging
from dataclasses import dataclass, field
from importlib import resources
from typing import Any
from urllib.parse import unquote

import pytest
from faststream.exceptions import NackMessage
from faststream.specification import AsyncAPI

from imagetron_images.bootstrap import build_broker, consumer_settings
from imagetron_images.settings import ImagesSettings
from imagetron_platform.jobs import Delivery, RetryLater, run_job
from imagetron_platform.messaging import Redelivery


def resolve(doc: dict[str, Any], ref: str) -> Any:
    """Follow a local JSON pointer (`#/a/b`), as AsyncAPI documents write them."""
    node: Any = doc
    for part in ref.removeprefix("#/").split("/"):
        node = node[unquote(part).replace("~1", "/").replace("~0", "~")]
    if isinstance(node, dict) and "$ref" in node:
        return resolve(doc, node["$ref"])
    return node


def operations(doc: dict[str, Any], tag: str | None = None) -> dict[tuple[str, str], set[str]]:
    """(action, address) -> the titles of the payload schemas."""
    found: dict[tuple[str, str], set[str]] = {}
    for op in doc["operations"].values():
        if tag is not None and not any(t["name"] == tag for t in op.get("tags", ())):
            continue
        address = resolve(doc, op["channel"]["$ref"])["address"]
        titles = {
            resolve(doc, resolve(doc, m["$ref"])["payload"]["$ref"])["title"]
            for m in op["messages"]
        }
        found.setdefault((op["action"], address), set()).update(titles)
    return found


def test_the_broker_receives_and_sends_what_the_contract_says() -> None:
    contract = json.loads(
        resources.files("imagetron_contracts.documents").joinpath("asyncapi.json").read_text()
    )
    broker = build_broker(ImagesSettings())
    ours = AsyncAPI(broker, schema_version="3.0.0").to_specification().to_jsonable()
    assert operations(ours) == operations(contract, tag="images")


def test_redelivery_backs_off_exponentially_up_to_a_cap() -> None:
    r = Redelivery(max_deliver=10, ack_wait_seconds=60, first_delay_seconds=1, max_delay_seconds=30)
    assert [r.delay_after(n) for n in range(1, 8)] == [1, 2, 4, 8, 16, 30, 30]
    config = r.consumer_config()
    assert (config.max_deliver, config.ack_wait) == (10, 60)
    assert config.backoff is None, "a consumer backoff would override the NAK delays"


def test_a_crashed_consumer_holds_a_job_briefly_whatever_the_provider_timeouts() -> None:
    """A slow attempt reports itself in progress; ack_wait only bounds a dead consumer's
    hold, so it does not grow with OpenAI's two-minute generation timeout."""
    settings = ImagesSettings(
        goapi_timeout_seconds=30, openai_timeout_seconds=300, ack_wait_seconds=10
    )
    consumers = consumer_settings(settings)
    for redelivery in (consumers.submit, consumers.persist, consumers.callbacks):
        assert redelivery.ack_wait_seconds == 10
    assert consumers.persist.max_deliver == settings.persist_max_deliveries


# --- run_job: from a handler's outcome to an acknowledgement ------------------------------


@dataclass
class _Sequence:
    stream: int = 42


@dataclass
class _Metadata:
    num_delivered: int
    stream: str = "WORK"
    sequence: _Sequence = field(default_factory=_Sequence)


@dataclass
class _Raw:
    metadata: _Metadata
    subject: str = "work.images.persist"


@dataclass
class FakeMessage:
    raw_message: _Raw
    headers: dict[str, str]
    reports: int = 0

    async def in_progress(self) -> None:
        self.reports += 1


def message(attempt: int, msg_id: str | None = "job-1") -> Any:
    headers = {"Nats-Msg-Id": msg_id} if msg_id else {}
    return FakeMessage(_Raw(_Metadata(num_delivered=attempt)), headers)


REDELIVERY = Redelivery(max_deliver=5, ack_wait_seconds=60)


async def test_the_handler_sees_the_message_id_and_its_attempt() -> None:
    seen: list[Delivery] = []

    async def handle(delivery: Delivery) -> None:
        seen.append(delivery)

    await run_job(message(3), REDELIVERY, handle)
    await run_job(message(1, msg_id=None), REDELIVERY, handle)
    assert seen == [Delivery("job-1", 3, 5), Delivery("WORK:42", 1, 5)]


async def test_a_slow_job_is_reported_in_progress_so_it_is_not_redelivered_meanwhile() -> None:
    quick = Redelivery(max_deliver=5, ack_wait_seconds=0.06)
    msg = message(1)

    async def slow(delivery: Delivery) -> None:
        await asyncio.sleep(0.2)

    await run_job(msg, quick, slow)
    assert msg.reports >= 3  # every ack_wait / 3
    after = msg.reports
    await asyncio.sleep(0.1)
    assert msg.reports == after, "no more reports once the job is done"


async def test_retry_later_is_a_delayed_nak() -> None:
    async def handle(delivery: Delivery) -> None:
        raise RetryLater("S3 is down")

    with pytest.raises(NackMessage) as raised:
        await run_job(message(3), REDELIVERY, handle)
    assert raised.value.extra_options == {"delay": REDELIVERY.delay_after(3)}


async def test_a_crash_is_a_delayed_nak_until_the_last_delivery(caplog) -> None:
    async def handle(delivery: Delivery) -> None:
        raise RuntimeError("database unreachable")

    with pytest.raises(NackMessage):
        await run_job(message(4), REDELIVERY, handle)
    caplog.clear()
    with caplog.at_level(logging.ERROR), pytest.raises(RuntimeError):
        await run_job(message(5), REDELIVERY, handle)
    assert "giving up" in caplog.text
