"""Durable jobs on JetStream: what a handler knows about the message it handles, and how
its outcome becomes an ack or a NAK with a delay.

A job that fails transiently raises `RetryLater` (or crashes) and is NAKed with a growing
delay (NATS redelivers a plain NAK at once, see `Redelivery`) until its last delivery, where
the handler is expected to give up and record the failure itself (`Delivery.is_last`):
nothing is retried for ever, nothing waits for ever.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from faststream.exceptions import NackMessage
from faststream.nats.annotations import NatsMessage

from imagetron_platform.messaging import Redelivery, in_progress

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Delivery:
    """`message_id` keys the inbox; `attempt` counts deliveries of this message from 1."""

    message_id: str
    attempt: int = 1
    max_attempts: int = 1

    @property
    def is_last(self) -> bool:
        return self.attempt >= self.max_attempts


class RetryLater(Exception):
    """The job failed transiently and has deliveries left: redeliver it after a while
    (`delay` seconds when given, else the redelivery's growing delay)."""

    def __init__(self, reason: str, *, delay: float | None = None) -> None:
        super().__init__(reason)
        self.delay = delay


def delivery_of(msg: NatsMessage, redelivery: Redelivery) -> Delivery:
    metadata = msg.raw_message.metadata
    return Delivery(
        # The publisher's Nats-Msg-Id (an outbox id, or the gateway's body hash) keys the
        # inbox; the stream position is unique too if a publisher forgot to set one.
        message_id=msg.headers.get("Nats-Msg-Id")
        or f"{metadata.stream}:{metadata.sequence.stream}",
        attempt=metadata.num_delivered,
        max_attempts=redelivery.max_deliver,
    )


async def run_job(
    msg: NatsMessage, redelivery: Redelivery, handle: Callable[[Delivery], Awaitable[None]]
) -> None:
    """Run `handle` for one delivery of `msg`, reporting it in progress meanwhile (so
    `ack_wait` need not outlast the slowest attempt): return (ack) or NAK with a delay."""
    delivery = delivery_of(msg, redelivery)
    try:
        async with in_progress(msg.in_progress, redelivery):
            await handle(delivery)
    except RetryLater as exc:
        delay = exc.delay if exc.delay is not None else redelivery.delay_after(delivery.attempt)
        log.warning(
            "%s: attempt %d of %d failed, retrying in %g s: %s",
            msg.raw_message.subject, delivery.attempt, delivery.max_attempts, delay, exc,
        )  # fmt: skip
        raise NackMessage(delay=delay) from exc
    except Exception as exc:
        if delivery.is_last:
            # JetStream will not deliver it again (max_deliver): what the job was about stays
            # as it is, for reconciliation (or the user) to find.
            log.exception(
                "%s: last attempt (%d) crashed; giving up on message %s",
                msg.raw_message.subject, delivery.attempt, delivery.message_id,
            )  # fmt: skip
            raise
        delay = redelivery.delay_after(delivery.attempt)
        log.exception(
            "%s: attempt %d of %d crashed, retrying in %g s",
            msg.raw_message.subject, delivery.attempt, delivery.max_attempts, delay,
        )  # fmt: skip
        raise NackMessage(delay=delay) from exc
