"""Outbox and inbox rows do not grow for ever: published rows and inbox rows past their
usefulness are deleted; nothing unpublished or still needed is."""

from __future__ import annotations

import uuid
from datetime import timedelta

import pytest
from sqlalchemy import MetaData, insert, select, text
from sqlalchemy.ext.asyncio import create_async_engine

from imagetron_platform.clock import utcnow
from imagetron_platform.db import inbox_table, make_session_factory, outbox_table
from imagetron_platform.outbox import INBOX_RETENTION, OutboxRelay

pytestmark = pytest.mark.integration


async def test_prune_deletes_only_old_published_and_old_inbox_rows(postgres_dsn):
    schema = f"prune_{uuid.uuid4().hex[:8]}"
    metadata = MetaData(schema=schema)
    outbox, inbox = outbox_table(metadata), inbox_table(metadata)
    engine = create_async_engine(postgres_dsn)
    now = utcnow()
    try:
        async with engine.begin() as conn:
            await conn.execute(text(f'CREATE SCHEMA "{schema}"'))
            await conn.run_sync(metadata.create_all)
            rows = {
                "old published": (now - timedelta(days=3), now - timedelta(days=2)),
                "new published": (now - timedelta(hours=2), now - timedelta(hours=1)),
                "old unpublished": (now - timedelta(days=30), None),
            }
            for name, (created, published) in rows.items():
                await conn.execute(
                    insert(outbox).values(
                        id=uuid.uuid4(),
                        subject=f"events.test.{name.replace(' ', '_')}",
                        payload={},
                        created_at=created,
                        published_at=published,
                    )
                )
            await conn.execute(
                insert(inbox).values(
                    consumer="c",
                    message_id="old",
                    processed_at=now - INBOX_RETENTION - timedelta(hours=1),
                )
            )
            await conn.execute(
                insert(inbox).values(
                    consumer="c", message_id="recent", processed_at=now - timedelta(days=6)
                )
            )
        relay = OutboxRelay(
            make_session_factory(engine),
            outbox,
            broker=None,
            service="test",
            inbox=inbox,  # type: ignore[arg-type]
        )
        assert await relay.prune() == (1, 1)
        async with engine.connect() as conn:
            subjects = set((await conn.execute(select(outbox.c.subject))).scalars())
            kept = set((await conn.execute(select(inbox.c.message_id))).scalars())
        assert subjects == {"events.test.new_published", "events.test.old_unpublished"}
        assert kept == {"recent"}
        assert await relay.prune() == (0, 0)
        # The unpublished row has waited 30 days: that is the backlog the gauge shows.
        assert 29 * 86400 < await relay.measure_backlog() < 31 * 86400
    finally:
        async with engine.begin() as conn:
            await conn.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))
        await engine.dispose()
