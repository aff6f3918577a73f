"""How a durable job's outcome becomes an ack or a NAK with a delay (`run_job`): success
acks, `RetryLater` and crashes are NAKed with their delay until the last delivery, where a
crash is given up (raised, not NAKed: JetStream will not deliver it again). The message is a
stand-in with only what `run_job` reads of FastStream's; the real round trip is in the
services' integration tests."""

from __future__ import annotations

import logging
from types import SimpleNamespace
from typing import Any

import pytest
from faststream.exceptions import NackMessage

from imagetron_platform.jobs import Delivery, RetryLater, run_job
from imagetron_platform.messaging import Redelivery

REDELIVERY = Redelivery(max_deliver=4, ack_wait_seconds=30.0, first_delay_seconds=2.0)


def message(attempt: int, msg_id: str | None = "outbox-42") -> Any:
    metadata = SimpleNamespace(
        stream="JOBS", sequence=SimpleNamespace(stream=7), num_delivered=attempt
    )

    async def in_progress() -> None:
        return None

    headers = {} if msg_id is None else {"Nats-Msg-Id": msg_id}
    return SimpleNamespace(
        raw_message=SimpleNamespace(metadata=metadata, subject="jobs.work"),
        headers=headers,
        in_progress=in_progress,
    )


async def test_a_job_that_returns_is_acked_and_sees_its_delivery():
    seen: list[Delivery] = []

    async def handle(delivery: Delivery) -> None:
        seen.append(delivery)

    await run_job(message(2), REDELIVERY, handle)
    assert seen == [Delivery(message_id="outbox-42", attempt=2, max_attempts=4)]
    assert not seen[0].is_last
    # A message without its publisher's id is keyed by its stream position.
    await run_job(message(4, msg_id=None), REDELIVERY, handle)
    assert seen[1] == Delivery(message_id="JOBS:7", attempt=4, max_attempts=4)
    assert seen[1].is_last


async def test_retry_later_is_a_nak_with_its_own_delay_or_the_growing_one(caplog):
    async def busy(_: Delivery) -> None:
        raise RetryLater("agency busy", delay=45.0)

    async def down(_: Delivery) -> None:
        raise RetryLater("storage down")

    with pytest.raises(NackMessage) as nak:
        await run_job(message(1), REDELIVERY, busy)
    assert nak.value.extra_options["delay"] == 45.0
    with caplog.at_level(logging.WARNING):
        with pytest.raises(NackMessage) as nak:
            await run_job(message(3), REDELIVERY, down)
    assert nak.value.extra_options["delay"] == REDELIVERY.delay_after(3) == 8.0
    assert "attempt 3 of 4 failed, retrying in 8 s: storage down" in caplog.text


async def test_a_crash_is_retried_until_the_last_delivery_which_gives_up(caplog):
    async def crash(_: Delivery) -> None:
        raise ZeroDivisionError("bug")

    with pytest.raises(NackMessage) as nak:
        await run_job(message(2), REDELIVERY, crash)
    assert nak.value.extra_options["delay"] == REDELIVERY.delay_after(2)
    with caplog.at_level(logging.ERROR):
        with pytest.raises(ZeroDivisionError):
            await run_job(message(4), REDELIVERY, crash)
    assert "last attempt (4) crashed; giving up on message outbox-42" in caplog.text
