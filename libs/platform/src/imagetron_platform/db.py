"""PostgreSQL access: one engine per process, and the unit of work that commits.

A service's state change and the events it causes are written in one transaction: the
unit of work collects outbox rows in the same session and commits once. Repositories never
commit.
"""

from __future__ import annotations

import functools
import uuid
from collections.abc import Callable, Mapping
from types import TracebackType
from typing import Any, ClassVar, Self

from pydantic import BaseModel
from sqlalchemy import (
    BigInteger,
    Column,
    DateTime,
    Identity,
    Index,
    MetaData,
    String,
    Table,
    Text,
    Uuid,
    bindparam,
    insert,
    text,
    update,
)
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.ext.asyncio import (
    AsyncEngine,
    AsyncSession,
    async_sessionmaker,
    create_async_engine,
)
from sqlalchemy.sql.dml import Insert, Update

from imagetron_platform import correlation
from imagetron_platform.clock import utcnow
from imagetron_platform.ports import TransactionNotOpen


def make_engine(
    url: str,
    *,
    pool_size: int = 5,
    application_name: str = "imagetron",
    connect_timeout_seconds: float = 10.0,
    statement_timeout_seconds: float = 30.0,
    pool_recycle_seconds: int = 1800,
) -> AsyncEngine:
    """An engine whose connections name themselves in `pg_stat_activity`, give up
    connecting and running a statement after a bound (a stuck database is an error, not a
    hang), and are replaced before a proxy or server drops them as idle."""
    return create_async_engine(
        url,
        pool_size=pool_size,
        pool_pre_ping=True,
        pool_recycle=pool_recycle_seconds,
        pool_timeout=connect_timeout_seconds,
        connect_args={
            "timeout": connect_timeout_seconds,
            "command_timeout": statement_timeout_seconds + 5.0,
            "server_settings": {
                "application_name": application_name,
                "statement_timeout": str(int(statement_timeout_seconds * 1000)),
            },
        },
    )


def make_session_factory(engine: AsyncEngine) -> async_sessionmaker[AsyncSession]:
    return async_sessionmaker(engine, expire_on_commit=False)


async def ping(engine: AsyncEngine) -> None:
    async with engine.connect() as conn:
        await conn.execute(text("select 1"))


#: The bind parameter in which `row_update` statements take the key of the row they change.
ROW_KEY = "row_key"


@functools.cache
def row_update(table: Table, key: str = "id") -> Update:
    """`UPDATE table SET ... WHERE key = :row_key`, built once per table; the columns set are
    the parameters it is executed with (`update_row`).

    Why not `update(table).where(...).values(row)` per call: SQLAlchemy (2.1) then computes
    the statement's cache key over one untyped bind parameter per value, each a new
    `NullType` whose cache key it derives from the type's constructor signature: 1.9 ms per
    28-column task row, most of an images callback's time in SQLAlchemy (py-spy). A
    statement built once has its key computed once."""
    return update(table).where(table.c[key] == bindparam(ROW_KEY))


async def update_row(
    session: AsyncSession, table: Table, values: Mapping[str, Any], key: str = "id"
) -> None:
    """Write every column of `values` to the row whose `key` column is `values[key]`."""
    changed = {name: value for name, value in values.items() if name != key}
    await session.execute(row_update(table, key), {**changed, ROW_KEY: values[key]})


@functools.cache
def _claim(inbox: Table) -> Insert:
    return pg_insert(inbox).on_conflict_do_nothing().returning(inbox.c.message_id)


def outbox_table(metadata: MetaData) -> Table:
    """Messages waiting to be published, in commit order (`seq`)."""
    return Table(
        "outbox",
        metadata,
        Column("seq", BigInteger, Identity(always=True), primary_key=True),
        Column("id", Uuid, nullable=False, unique=True),
        Column("subject", Text, nullable=False),
        Column("payload", JSONB, nullable=False),
        Column("correlation_id", String(64)),
        Column("created_at", DateTime(timezone=True), nullable=False),
        Column("published_at", DateTime(timezone=True)),
        Index(
            "ix_outbox_unpublished",
            "seq",
            postgresql_where=text("published_at IS NULL"),
        ),
    )


def inbox_table(metadata: MetaData) -> Table:
    """Ids of messages a consumer has applied, written with the effect they caused. The
    relay prunes them by age (`OutboxRelay.prune`), a batch at a time: `processed_at` is
    indexed so that each batch is found without reading the whole table."""
    return Table(
        "inbox",
        metadata,
        Column("consumer", String(100), primary_key=True),
        Column("message_id", String(200), primary_key=True),
        Column("processed_at", DateTime(timezone=True), nullable=False),
        Index("ix_inbox_processed_at", "processed_at"),
    )


class SqlUnitOfWork:
    """`async with uow:` opens a transaction; `await uow.commit()` ends it; leaving without
    committing rolls back. Messages emitted in between are published only if it commits.

    Emitted messages are written to the outbox together, in the order they were emitted,
    by one statement just before the commit: a transition that emits a handful of events
    and jobs costs one round trip to the database for them, not one each."""

    #: The service's outbox and inbox (`outbox_table`, `inbox_table` in its schema): a
    #: service's unit of work names its own; without them `emit` and `claim` refuse.
    outbox: ClassVar[Table | None] = None
    inbox: ClassVar[Table | None] = None

    def __init__(
        self,
        session_factory: async_sessionmaker[AsyncSession],
        on_commit: Callable[[], None] | None = None,
    ) -> None:
        self._session_factory = session_factory
        self._outbox = self.outbox
        self._inbox = self.inbox
        self._on_commit = on_commit
        self._session: AsyncSession | None = None
        self._emitted: list[dict[str, object]] = []

    @property
    def session(self) -> AsyncSession:
        if self._session is None:
            raise TransactionNotOpen
        return self._session

    async def __aenter__(self) -> Self:
        self._session = self._session_factory()
        self._emitted = []
        self.open_repositories(self._session)
        return self

    def open_repositories(self, session: AsyncSession) -> None:
        """Where a service's unit of work builds its repositories on the session it opened
        (they live as long as the transaction)."""

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        session, self._session = self._session, None
        if session is not None:
            await session.rollback()
            await session.close()

    async def commit(self) -> None:
        emitted, self._emitted = self._emitted, []
        if emitted:
            assert self._outbox is not None  # emit() checked it
            await self.session.execute(insert(self._outbox), emitted)
        await self.session.commit()
        if emitted and self._on_commit is not None:
            self._on_commit()

    async def emit(self, subject: str, payload: BaseModel, message_id: uuid.UUID) -> None:
        """Queue a message for the outbox relay, inside this transaction (written at the
        commit)."""
        if self._outbox is None:
            raise RuntimeError("this unit of work has no outbox")
        self.session  # noqa: B018 -- refuses outside a transaction, as claim does
        self._emitted.append(
            {
                "id": message_id,
                "subject": subject,
                "payload": payload.model_dump(mode="json"),
                "correlation_id": correlation.current(),
                "created_at": utcnow(),
            }
        )

    async def claim(self, consumer: str, message_id: str) -> bool:
        """Record that `consumer` applies `message_id` in this transaction.

        False means it was applied before: the caller must do nothing (and ack)."""
        if self._inbox is None:
            raise RuntimeError("this unit of work has no inbox")
        result = await self.session.execute(
            _claim(self._inbox),
            {"consumer": consumer, "message_id": message_id, "processed_at": utcnow()},
        )
        return result.first() is not None
