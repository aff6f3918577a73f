"""The unit of work's promises, held against SqlUnitOfWork on a real PostgreSQL and against
the in-memory one the services' unit tests use (`imagetron_platform.testing`), so that the
fake cannot promise more or less than the real thing: nothing is visible before the commit,
the outbox gets what was emitted in order at the commit only, leaving without a commit (an
exception included) discards changes, messages and claims, and a claim is granted once.
The SQL one also writes its messages in one statement."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

import pytest
from pydantic import BaseModel
from sqlalchemy import Column, MetaData, Table, Text, event, insert, select, text
from sqlalchemy.ext.asyncio import AsyncSession, create_async_engine

from imagetron_platform import correlation
from imagetron_platform.db import SqlUnitOfWork, inbox_table, make_session_factory, outbox_table
from imagetron_platform.ports import Transactional, TransactionNotOpen
from imagetron_platform.testing import InMemoryDatabase, InMemoryUnitOfWork


class Changed(BaseModel):
    n: int


@pytest.mark.integration
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


# --- One scratch service with a repository of notes, in PostgreSQL and in memory. ------------


class Notes(Protocol):
    async def put(self, key: str, text: str) -> None: ...

    async def get(self, key: str) -> str | None: ...


class ScratchUnitOfWork(Transactional, Protocol):
    notes: Notes


@dataclass
class Committed:
    """What another reader sees: the notes, the outbox rows in order, the claims."""

    notes: dict[str, str]
    outbox: list[tuple[uuid.UUID, str, dict[str, Any], str | None]]
    claims: set[tuple[str, str]]


class SqlNotes:
    def __init__(self, session: AsyncSession, table: Table) -> None:
        self._session, self._table = session, table

    async def put(self, key: str, text: str) -> None:
        await self._session.execute(insert(self._table).values(key=key, text=text))

    async def get(self, key: str) -> str | None:
        query = select(self._table.c.text).where(self._table.c.key == key)
        return (await self._session.execute(query)).scalar_one_or_none()


@dataclass
class NotesState:
    notes: dict[str, str] = field(default_factory=dict)


class MemoryNotes:
    def __init__(self, state: NotesState) -> None:
        self._state = state

    async def put(self, key: str, text: str) -> None:
        assert key not in self._state.notes, "duplicate key"
        self._state.notes[key] = text

    async def get(self, key: str) -> str | None:
        return self._state.notes.get(key)


class MemoryScratchUnitOfWork(InMemoryUnitOfWork[NotesState]):
    notes: MemoryNotes

    def open_repositories(self, state: NotesState) -> None:
        self.notes = MemoryNotes(state)


@dataclass
class Harness:
    new_uow: Callable[[], ScratchUnitOfWork]
    committed: Callable[[], Awaitable[Committed]]


@pytest.fixture(params=["memory", pytest.param("postgres", marks=pytest.mark.integration)])
async def harness(request: pytest.FixtureRequest) -> AsyncIterator[Harness]:
    if request.param == "memory":
        database = InMemoryDatabase(NotesState())

        async def in_memory() -> Committed:
            outbox = [
                (m.message_id, m.subject, m.payload, m.correlation_id) for m in database.outbox
            ]
            return Committed(dict(database.committed.notes), outbox, set(database.inbox))

        yield Harness(lambda: MemoryScratchUnitOfWork(database), in_memory)
        return

    schema = f"uow_{uuid.uuid4().hex[:8]}"
    metadata = MetaData(schema=schema)
    notes = Table(
        "notes",
        metadata,
        Column("key", Text, primary_key=True),
        Column("text", Text, nullable=False),
    )

    outbox, inbox = outbox_table(metadata), inbox_table(metadata)

    class SqlScratchUnitOfWork(SqlUnitOfWork):
        def open_repositories(self, session: AsyncSession) -> None:
            self.notes = SqlNotes(session, notes)

    SqlScratchUnitOfWork.outbox, SqlScratchUnitOfWork.inbox = outbox, inbox
    engine = create_async_engine(request.getfixturevalue("postgres_dsn"))
    factory = make_session_factory(engine)

    async def in_postgres() -> Committed:
        async with factory() as session:
            found = (await session.execute(select(notes))).all()
            rows = (await session.execute(select(outbox).order_by(outbox.c.seq))).all()
            claims = (await session.execute(select(inbox.c.consumer, inbox.c.message_id))).all()
        return Committed(
            {r.key: r.text for r in found},
            [(r.id, r.subject, r.payload, r.correlation_id) for r in rows],
            {(r.consumer, r.message_id) for r in claims},
        )

    try:
        async with engine.begin() as conn:
            await conn.execute(text(f'CREATE SCHEMA "{schema}"'))
            await conn.run_sync(metadata.create_all)
        yield Harness(lambda: SqlScratchUnitOfWork(factory), in_postgres)
    finally:
        async with engine.begin() as conn:
            await conn.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))
        await engine.dispose()


NOTHING = Committed({}, [], set())


async def test_nothing_is_visible_before_the_commit_and_all_of_it_after(harness: Harness):
    ids = [uuid.uuid4() for _ in range(3)]
    correlation.bind("req-42")
    try:
        async with harness.new_uow() as uow:
            await uow.notes.put("a", "first")
            assert await uow.notes.get("a") == "first"  # the transaction sees its own write
            for n, message_id in enumerate(ids):
                await uow.emit(f"events.test.{n}", Changed(n=n), message_id)
            assert await uow.claim("consumer", "message-1")
            assert await harness.committed() == NOTHING
            await uow.commit()
    finally:
        correlation.bind(None)
    assert await harness.committed() == Committed(
        {"a": "first"},
        [(i, f"events.test.{n}", {"n": n}, "req-42") for n, i in enumerate(ids)],
        {("consumer", "message-1")},
    )


async def test_leaving_without_a_commit_discards_changes_messages_and_claims(harness: Harness):
    kept = uuid.uuid4()
    async with harness.new_uow() as uow:
        await uow.notes.put("a", "kept")
        await uow.emit("events.test.kept", Changed(n=1), kept)
        await uow.commit()
        # The transaction goes on after a commit; what follows is not committed.
        await uow.notes.put("b", "lost")
        await uow.emit("events.test.lost", Changed(n=2), uuid.uuid4())
        assert await uow.claim("consumer", "message-1")
    assert await harness.committed() == Committed(
        {"a": "kept"}, [(kept, "events.test.kept", {"n": 1}, None)], set()
    )
    async with harness.new_uow() as uow:
        assert await uow.notes.get("b") is None
        assert await uow.claim("consumer", "message-1"), "a claim rolled back is free again"


async def test_an_exception_rolls_back_and_goes_on(harness: Harness):
    async def failing_handler() -> None:
        async with harness.new_uow() as uow:
            await uow.notes.put("a", "lost")
            await uow.emit("events.test.lost", Changed(n=1), uuid.uuid4())
            await uow.claim("consumer", "message-1")
            raise LookupError("the handler failed")

    with pytest.raises(LookupError, match="the handler failed"):
        await failing_handler()
    assert await harness.committed() == NOTHING


async def test_a_message_is_claimed_once_per_consumer(harness: Harness):
    async with harness.new_uow() as uow:
        assert await uow.claim("consumer", "message-1")
        assert not await uow.claim("consumer", "message-1")  # within the same transaction
        assert await uow.claim("another consumer", "message-1")
        await uow.commit()
    async with harness.new_uow() as uow:
        assert not await uow.claim("consumer", "message-1")
        assert await uow.claim("consumer", "message-2")
        await uow.commit()
    assert (await harness.committed()).claims == {
        ("consumer", "message-1"),
        ("another consumer", "message-1"),
        ("consumer", "message-2"),
    }


async def test_emit_and_claim_are_refused_outside_a_transaction(harness: Harness):
    uow = harness.new_uow()
    with pytest.raises(TransactionNotOpen):
        await uow.emit("events.test.early", Changed(n=1), uuid.uuid4())
    with pytest.raises(TransactionNotOpen):
        await uow.claim("consumer", "message-1")
    async with uow:
        await uow.commit()
    with pytest.raises(TransactionNotOpen):
        await uow.emit("events.test.late", Changed(n=1), uuid.uuid4())
    assert await harness.committed() == NOTHING


async def test_in_memory_transactions_that_overlap_cannot_both_commit():
    database = InMemoryDatabase(NotesState())
    first, second = MemoryScratchUnitOfWork(database), MemoryScratchUnitOfWork(database)
    async with first, second:
        await first.notes.put("a", "first")
        await second.notes.put("b", "second")
        await first.commit()
        with pytest.raises(RuntimeError, match="overlapping"):
            await second.commit()
    assert database.committed.notes == {"a": "first"}


def test_a_row_update_is_built_once_per_table_and_sets_what_it_is_given() -> None:
    """Built per call, `update(...).values(row)` costs SQLAlchemy a fresh cache key over
    every value (1-2 ms for a task row); `row_update` is one statement per table."""
    from sqlalchemy import Column, Integer, MetaData, String, Table
    from sqlalchemy.dialects import postgresql

    from imagetron_platform.db import ROW_KEY, row_update

    table = Table(
        "things", MetaData(), Column("id", Integer), Column("a", String), Column("b", String)
    )
    statement = row_update(table)
    assert row_update(table) is statement
    compiled = str(statement.compile(dialect=postgresql.dialect(), column_keys=["a", ROW_KEY]))
    assert (
        compiled == f"UPDATE things SET a=%(a)s::VARCHAR WHERE things.id = %({ROW_KEY})s::INTEGER"
    )
