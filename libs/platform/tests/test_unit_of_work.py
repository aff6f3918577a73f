"""SqlUnitOfWork against a real PostgreSQL: what a transition emits reaches the outbox in one
statement at the commit, in the order it was emitted, and not at all without the commit."""

from __future__ import annotations

import uuid
from typing import Any

import pytest
from pydantic import BaseModel
from sqlalchemy import MetaData, event, select, text
from sqlalchemy.ext.asyncio import create_async_engine

from imagetron_platform.db import SqlUnitOfWork, inbox_table, make_session_factory, outbox_table

pytestmark = pytest.mark.integration


class Changed(BaseModel):
    n: int


async def test_emitted_messages_are_written_in_one_statement_in_order_at_the_commit(
    postgres_dsn,
):
    schema = f"uow_{uuid.uuid4().hex[:8]}"
    metadata = MetaData(schema=schema)
    outbox, inbox = outbox_table(metadata), inbox_table(metadata)
    engine = create_async_engine(postgres_dsn)
    statements: list[str] = []

    def record(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        if "outbox" in statement and statement.lstrip().upper().startswith("INSERT"):
            statements.append(statement)

    event.listen(engine.sync_engine, "before_cursor_execute", record)
    factory = make_session_factory(engine)
    committed: list[int] = []
    try:
        async with engine.begin() as conn:
            await conn.execute(text(f'CREATE SCHEMA "{schema}"'))
            await conn.run_sync(metadata.create_all)

        class ScratchUnitOfWork(SqlUnitOfWork):
            pass

        ScratchUnitOfWork.outbox, ScratchUnitOfWork.inbox = outbox, inbox
        ids = [uuid.uuid4() for _ in range(5)]
        async with ScratchUnitOfWork(factory, lambda: committed.append(1)) as uow:
            assert await uow.claim("test", "message-1")
            for n, message_id in enumerate(ids):
                await uow.emit(f"events.test.{n}", Changed(n=n), message_id)
            assert statements == []  # nothing written before the commit
            await uow.commit()
        assert len(statements) == 1
        assert committed == [1]

        # Left without a commit: neither the messages nor the claim remain.
        async with ScratchUnitOfWork(factory) as uow:
            assert await uow.claim("test", "message-2")
            await uow.emit("events.test.lost", Changed(n=99), uuid.uuid4())

        async with factory() as session:
            rows = (await session.execute(select(outbox).order_by(outbox.c.seq))).all()
            claims = (await session.execute(select(inbox.c.message_id))).scalars().all()
        assert [(r.id, r.subject, r.payload) for r in rows] == [
            (message_id, f"events.test.{n}", {"n": n}) for n, message_id in enumerate(ids)
        ]
        assert claims == ["message-1"]
        assert len(statements) == 1
    finally:
        async with engine.begin() as conn:
            await conn.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))
        await engine.dispose()
