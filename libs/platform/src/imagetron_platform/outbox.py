"""The outbox relay: publishes committed outbox rows to JetStream, in commit order.

However many replicas run a relay, one publishes at a time (a transaction-scoped advisory
lock per outbox table), so the events of one aggregate reach the stream in the order they
were written; each event also carries the aggregate's version for consumers to drop a stale
one.

Each row is published with `Nats-Msg-Id` = its id and marked published only after the
stream acknowledged it, so a crash between the two republishes a message that JetStream's
duplicate window (and every consumer's inbox) then drops: at-least-once on the wire,
exactly-once in effect.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from datetime import timedelta
from typing import Any

from faststream.nats import NatsBroker
from sqlalchemy import Table, func, select, tuple_, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from imagetron_contracts.streams import STREAMS
from imagetron_platform.clock import utcnow
from imagetron_platform.metrics import OUTBOX_OLDEST_UNPUBLISHED, OUTBOX_PUBLISHED
from imagetron_platform.pruning import delete_batch, remove_in_batches

log = logging.getLogger(__name__)


#: How often the backlog gauge is refreshed (one indexed query).
BACKLOG_CHECK_SECONDS = 5.0
#: Longer than any stream keeps a message, so no redelivery can outlive its inbox row.
INBOX_RETENTION = timedelta(seconds=max(s.max_age_seconds for s in STREAMS)) + timedelta(days=1)


class OutboxRelay:
    def __init__(
        self,
        session_factory: async_sessionmaker[AsyncSession],
        outbox: Table,
        broker: NatsBroker,
        *,
        service: str,
        batch_size: int = 200,
        poll_seconds: float = 1.0,
        inbox: Table | None = None,
        prune_every_seconds: float = 3600.0,
        published_retention: timedelta = timedelta(days=1),
        inbox_retention: timedelta = INBOX_RETENTION,
    ) -> None:
        self._session_factory = session_factory
        self._outbox = outbox
        self._broker = broker
        self._service = service
        self._batch_size = batch_size
        self._poll_seconds = poll_seconds
        self._inbox = inbox
        self._prune_every_seconds = prune_every_seconds
        self._published_retention = published_retention
        self._inbox_retention = inbox_retention
        self._next_prune = 0.0
        self._next_backlog_check = 0.0
        self._wakeup = asyncio.Event()
        self._lock_key = f"imagetron.outbox.{outbox.fullname}"

    async def prune(self) -> tuple[int, int]:
        """Delete outbox rows published longer ago than `published_retention`, and inbox
        rows older than `inbox_retention`, a batch per committed transaction until none is
        left (after a backlog, no transaction holds more than a batch); how many of each.

        An inbox row matters only while its message can still be delivered: past the
        longest stream retention (plus a day) no redelivery can arrive."""
        now = utcnow()
        outbox, inbox = self._outbox, self._inbox
        # Oldest first: they lead the primary key, so each batch is found at its start.
        published = (
            select(outbox.c.seq)
            .where(outbox.c.published_at < now - self._published_retention)
            .order_by(outbox.c.seq)
        )
        outbox_done = await remove_in_batches(
            self._session_factory,
            lambda session, batch: delete_batch(session, outbox, outbox.c.seq, published, batch),
        )
        if inbox is None:
            return outbox_done, 0
        key = tuple_(inbox.c.consumer, inbox.c.message_id)
        applied = select(inbox.c.consumer, inbox.c.message_id).where(
            inbox.c.processed_at < now - self._inbox_retention
        )
        inbox_done = await remove_in_batches(
            self._session_factory,
            lambda session, batch: delete_batch(session, inbox, key, applied, batch),
        )
        return outbox_done, inbox_done

    async def measure_backlog(self) -> float:
        """Seconds the oldest unpublished row has waited (the backlog gauge); 0 if none."""
        t = self._outbox
        async with self._session_factory() as session:
            oldest = await session.scalar(
                select(func.min(t.c.created_at)).where(t.c.published_at.is_(None))
            )
        age = 0.0 if oldest is None else max(0.0, (utcnow() - oldest).total_seconds())
        OUTBOX_OLDEST_UNPUBLISHED.labels(self._service).set(age)
        return age

    async def _housekeeping(self) -> None:
        now = time.monotonic()
        if now >= self._next_backlog_check:
            self._next_backlog_check = now + BACKLOG_CHECK_SECONDS
            await self.measure_backlog()
        await self._prune_when_due()

    async def _prune_when_due(self) -> None:
        if time.monotonic() < self._next_prune:
            return
        self._next_prune = time.monotonic() + self._prune_every_seconds
        published, applied = await self.prune()
        if published or applied:
            log.info("pruned %d published outbox rows and %d inbox rows", published, applied)

    def wake(self) -> None:
        """Called after a commit that emitted messages: publish now, not at the next poll."""
        self._wakeup.set()

    async def publish_pending(self) -> int:
        """Publish one batch; returns how many rows were published (0 also when another
        relay of the same outbox is publishing: one relay at a time keeps the order)."""
        t = self._outbox
        async with self._session_factory() as session, session.begin():
            # Several replicas each run a relay. Were two to publish consecutive batches at
            # once, an aggregate's later event could reach the stream before its earlier one;
            # so they take turns on a transaction-scoped lock (released when its transaction
            # ends, or its connection dies).
            if not await session.scalar(
                select(func.pg_try_advisory_xact_lock(func.hashtext(self._lock_key)))
            ):
                return 0
            rows = (
                await session.execute(
                    select(t.c.seq, t.c.id, t.c.subject, t.c.payload, t.c.correlation_id)
                    .where(t.c.published_at.is_(None))
                    .order_by(t.c.seq)
                    .limit(self._batch_size)
                )
            ).all()
            if not rows:
                return 0
            # Published concurrently on one connection: NATS keeps the send order, so the
            # stream order is the commit order; only the acks are awaited together.
            results = await asyncio.gather(
                *(self._publish(r.subject, r.payload, str(r.id), r.correlation_id) for r in rows),
                return_exceptions=True,
            )
            done = []
            for row, result in zip(rows, results, strict=True):
                if isinstance(result, BaseException):
                    log.warning(
                        "outbox publish failed",
                        extra={"subject": row.subject, "error": repr(result)},
                    )
                    break  # keep order: retry this row and everything after it
                done.append(row.seq)
            if done:
                await session.execute(
                    update(t).where(t.c.seq.in_(done)).values(published_at=utcnow())
                )
            OUTBOX_PUBLISHED.labels(self._service).inc(len(done))
            return len(done)

    async def _publish(
        self, subject: str, payload: dict[str, Any], message_id: str, correlation_id: str | None
    ) -> None:
        await self._broker.publish(
            payload,
            subject,
            headers={"Nats-Msg-Id": message_id},
            correlation_id=correlation_id,
            stream=_stream_for(subject),
            timeout=5.0,
        )

    async def run(self) -> None:
        while True:
            try:
                while await self.publish_pending() == self._batch_size:
                    pass
                await self._housekeeping()
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("outbox relay pass failed; retrying")
            # Not asyncio.wait_for: on Python 3.11 it swallows a cancellation that arrives
            # while the event is being set (a commit's wake() during shutdown), and the relay
            # would never stop.
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(self._poll_seconds):
                    await self._wakeup.wait()
            self._wakeup.clear()


def _stream_for(subject: str) -> str:
    for spec in STREAMS:
        if any(subject.startswith(s.rstrip(">")) for s in spec.subjects):
            return spec.name
    raise ValueError(f"no stream declared for subject {subject!r}")
