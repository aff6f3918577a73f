"""Outbox and inbox rows do not grow for ever: published rows and inbox rows past their
usefulness are deleted; nothing unpublished or still needed is. After a backlog, a prune
removes it all, a batch per committed transaction."""

from __future__ import annotations

import uuid
from datetime import timedelta

import pytest
from sqlalchemy import MetaData, event, func, insert, select, text
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import create_async_engine

from imagetron_platform.clock import utcnow
from imagetron_platform.db import inbox_table, make_session_factory, outbox_table
from imagetron_platform.outbox import INBOX_RETENTION, OutboxRelay
from imagetron_platform.pruning import PRUNE_BATCH

pytestmark = pytest.mark.integration


@pytest.fixture
async def tables(postgres_dsn):
    """An outbox and an inbox in a schema of their own; yields (engine, outbox, inbox)."""
    schema = f"prune_{uuid.uuid4().hex[:8]}"
    metadata = MetaData(schema=schema)
    outbox, inbox = outbox_table(metadata), inbox_table(metadata)
    engine = create_async_engine(postgres_dsn)
    async with engine.begin() as conn:
        await conn.execute(text(f'CREATE SCHEMA "{schema}"'))
        await conn.run_sync(metadata.create_all)
    try:
        yield engine, outbox, inbox
    finally:
        async with engine.begin() as conn:
            await conn.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))
        await engine.dispose()


def _relay(engine, outbox, inbox) -> OutboxRelay:
    return OutboxRelay(
        make_session_factory(engine),
        outbox,
        broker=None,  # type: ignore[arg-type]
        service="test",
        inbox=inbox,
    )


async def test_prune_deletes_only_old_published_and_old_inbox_rows(tables):
    engine, outbox, inbox = tables
    now = utcnow()
    async with engine.begin() as conn:
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
    relay = _relay(engine, outbox, inbox)
    assert await relay.prune() == (1, 1)
    async with engine.connect() as conn:
        subjects = set((await conn.execute(select(outbox.c.subject))).scalars())
        kept = set((await conn.execute(select(inbox.c.message_id))).scalars())
    assert subjects == {"events.test.new_published", "events.test.old_unpublished"}
    assert kept == {"recent"}
    assert await relay.prune() == (0, 0)
    # The unpublished row has waited 30 days: that is the backlog the gauge shows.
    assert 29 * 86400 < await relay.measure_backlog() < 31 * 86400


# --- after a backlog: a batch per transaction ---------------------------------------------

OLD_PUBLISHED, OLD_APPLIED = 2 * PRUNE_BATCH + 1, PRUNE_BATCH + 1


@pytest.fixture
async def backlog(tables):
    """More than a batch of outbox and of inbox rows past retention, and a recent one of
    each; yields (engine, outbox, inbox)."""
    engine, outbox, inbox = tables
    now = utcnow()
    old, recent = now - timedelta(days=2), now - timedelta(hours=1)
    async with engine.begin() as conn:
        await conn.execute(
            insert(outbox),
            [
                {
                    "id": uuid.uuid4(),
                    "subject": f"events.test.{n}",
                    "payload": {},
                    "created_at": published,
                    "published_at": published,
                }
                for n, published in enumerate([old] * OLD_PUBLISHED + [recent])
            ],
        )
        applied_long_ago = now - INBOX_RETENTION - timedelta(hours=1)
        await conn.execute(
            insert(inbox),
            [
                {"consumer": "c", "message_id": str(n), "processed_at": processed}
                for n, processed in enumerate([applied_long_ago] * OLD_APPLIED + [recent])
            ],
        )
    return tables


async def test_a_prune_removes_a_backlog_a_committed_batch_at_a_time(backlog):
    engine, outbox, inbox = backlog
    commits = []
    event.listen(engine.sync_engine, "commit", lambda conn: commits.append(conn))

    assert await _relay(engine, outbox, inbox).prune() == (OLD_PUBLISHED, OLD_APPLIED)

    # 2,001 outbox rows: batches of 1,000, 1,000 and 1; 1,001 inbox rows: 1,000 and 1.
    assert len(commits) == 3 + 2
    async with engine.connect() as conn:
        subjects = (await conn.execute(select(outbox.c.subject))).scalars().all()
        kept = (await conn.execute(select(inbox.c.message_id))).scalars().all()
    assert (subjects, kept) == ([f"events.test.{OLD_PUBLISHED}"], [str(OLD_APPLIED)])


async def test_a_failing_batch_keeps_the_batches_removed_before_it(backlog):
    engine, outbox, inbox = backlog
    # The row at position 1,500 (in the second batch) cannot be deleted.
    async with engine.begin() as conn:
        await conn.execute(
            text(
                f"CREATE FUNCTION {outbox.schema}.refuse() RETURNS trigger LANGUAGE plpgsql AS "
                "$$ BEGIN RAISE EXCEPTION 'refused'; END $$"
            )
        )
        await conn.execute(
            text(
                f"CREATE TRIGGER refuse BEFORE DELETE ON {outbox.fullname} FOR EACH ROW "
                f"WHEN (OLD.subject = 'events.test.1500') EXECUTE FUNCTION {outbox.schema}.refuse()"
            )
        )

    with pytest.raises(DBAPIError, match="refused"):
        await _relay(engine, outbox, inbox).prune()

    async with engine.connect() as conn:
        left = await conn.scalar(select(func.count()).select_from(outbox))
    assert left == OLD_PUBLISHED + 1 - PRUNE_BATCH


# --- the inbox's prune finds its rows by their age, not by reading the table -------------


async def test_the_inbox_prune_reads_no_table_sequentially(tables):
    """Most of an inbox is rows still in retention: a prune that read the whole table to
    find the few past it would cost as much as the inbox is long, every hour. The relay's
    own DELETE, captured as it ran, is EXPLAINed on the statistics ANALYZE gathered before
    it (without the index: a Seq Scan on the inbox, cost 379 against 101)."""
    engine, outbox, inbox = tables
    recent, old = 20_000, 50
    async with engine.begin() as conn:
        await conn.execute(
            text(
                f"INSERT INTO {inbox.fullname} (consumer, message_id, processed_at) "
                "SELECT 'c', 'recent-' || n, now() - interval '1 hour' * (n % 24) "
                "FROM generate_series(1, :recent) AS n UNION ALL "
                "SELECT 'c', 'old-' || n, CAST(:long_ago AS timestamptz) "
                "FROM generate_series(1, :old) AS n"
            ),
            {
                "recent": recent,
                "old": old,
                "long_ago": utcnow() - INBOX_RETENTION - timedelta(days=1),
            },
        )
        await conn.execute(text(f"ANALYZE {inbox.fullname}"))
    ran: list[tuple[str, object]] = []

    def capture(conn, cursor, statement, parameters, context, executemany):
        if statement.startswith(f"DELETE FROM {inbox.fullname}"):
            ran.append((statement, parameters))

    event.listen(engine.sync_engine, "before_cursor_execute", capture)
    try:
        assert await _relay(engine, outbox, inbox).prune() == (0, old)
    finally:
        event.remove(engine.sync_engine, "before_cursor_execute", capture)

    statement, parameters = ran[0]
    async with engine.connect() as conn:
        plan = "\n".join((await conn.exec_driver_sql(f"EXPLAIN {statement}", parameters)).scalars())
    assert "ix_inbox_processed_at" in plan, plan
    assert "Seq Scan" not in plan, plan
