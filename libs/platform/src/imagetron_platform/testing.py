"""Test support for services' own tests: an in-process client that runs an app's lifespan,
and an in-memory unit of work with `SqlUnitOfWork`'s transaction, outbox and inbox.

`httpx.ASGITransport` neither runs the lifespan nor passes its state to requests (servers
such as uvicorn copy it into every request's scope); `lifespan_client` does both, so
handlers read `request.state` in tests as they do in production. `state` stays the dict
the lifespan yielded: a test may replace an entry to change what later requests see.

`InMemoryUnitOfWork` is what a service's fake unit of work extends with its repositories
(`open_repositories(state)`, as `SqlUnitOfWork.open_repositories(session)`); the platform's
`test_unit_of_work.py` holds it and the SQL one to the same expectations.
"""

from __future__ import annotations

import contextlib
import copy
from collections.abc import AsyncIterator, Mapping, MutableMapping
from dataclasses import dataclass, field
from typing import Any, Generic, Protocol, Self, TypeVar
from uuid import UUID

import httpx
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from fastapi import FastAPI
from pydantic import BaseModel
from sqlalchemy import Connection, MetaData
from starlette.types import Receive, Scope, Send

from imagetron_platform import correlation
from imagetron_platform.ports import TransactionNotOpen


@dataclass
class LifespanClient:
    client: httpx.AsyncClient
    state: MutableMapping[str, Any]


@contextlib.asynccontextmanager
async def lifespan_client(
    app: FastAPI, base_url: str = "http://testserver"
) -> AsyncIterator[LifespanClient]:
    async with app.router.lifespan_context(app) as yielded:
        state: MutableMapping[str, Any] = dict(yielded or {})

        async def with_state(scope: Scope, receive: Receive, send: Send) -> None:
            await app({**scope, "state": dict(state)}, receive, send)

        transport = httpx.ASGITransport(app=with_state)
        async with httpx.AsyncClient(transport=transport, base_url=base_url) as client:
            yield LifespanClient(client, state)


State = TypeVar("State")
Key = TypeVar("Key")
Row = TypeVar("Row")


class OwnedRow(Protocol):
    @property
    def owner_id(self) -> UUID: ...


Owned = TypeVar("Owned", bound=OwnedRow)
Message = TypeVar("Message", bound=BaseModel)


def insert_once(table: dict[Key, Row], key: Key, row: Row) -> bool:
    """`INSERT ... ON CONFLICT DO NOTHING` on a table held as a dict: stores a copy of `row`
    (later changes to the object are not written) unless `key` is taken, then False."""
    if key in table:
        return False
    table[key] = copy.deepcopy(row)
    return True


def select_owned(table: Mapping[Key, Owned], key: Key, owner_id: UUID) -> Owned | None:
    """`SELECT ... WHERE id = :key AND owner_id = :owner_id` on a table held as a dict: a
    copy of the row (changing it writes nothing), None for another owner's."""
    row = table.get(key)
    return copy.deepcopy(row) if row is not None and row.owner_id == owner_id else None


@dataclass(frozen=True)
class Emitted:
    """An outbox row: the payload as the outbox holds it (JSON), not the model emitted."""

    subject: str
    payload: dict[str, Any]
    message_id: UUID
    correlation_id: str | None = None

    def read_as(self, model: type[Message]) -> Message:
        """The payload as a consumer reads it."""
        return model.model_validate(self.payload)


@dataclass
class InMemoryDatabase(Generic[State]):
    """What PostgreSQL holds: the service's committed state (its own dataclass of tables),
    the outbox in commit order, the inbox's claims and how many commits wrote them."""

    committed: State
    outbox: list[Emitted] = field(default_factory=list)
    inbox: set[tuple[str, str]] = field(default_factory=set)
    commits: int = 0


class InMemoryUnitOfWork(Generic[State]):
    """`SqlUnitOfWork` in memory. `async with uow:` works on a copy of the committed state
    (the repositories `open_repositories` builds see only it); `await uow.commit()` makes
    the copy the committed state and appends the messages emitted since to the outbox;
    leaving without a commit, an exception included, discards the changes, the messages and
    the claims. The transaction goes on after a commit, as the SQL session does.

    One difference is loud instead of silent: two transactions that overlap cannot both
    commit (the second raises), where PostgreSQL would merge writes to different rows."""

    def __init__(self, database: InMemoryDatabase[State]) -> None:
        self.database = database
        self._working: State | None = None
        self._emitted: list[Emitted] = []
        self._claimed: set[tuple[str, str]] = set()
        self._began_after = 0

    def open_repositories(self, state: State) -> None:
        """Where a service's fake builds its repositories on the state the transaction works
        on (they live as long as the transaction)."""

    @property
    def state(self) -> State:
        """The state this transaction works on."""
        if self._working is None:
            raise TransactionNotOpen
        return self._working

    async def __aenter__(self) -> Self:
        if self._working is not None:
            raise RuntimeError("the unit of work is already open: make one per transaction")
        self._working = copy.deepcopy(self.database.committed)
        self._emitted, self._claimed = [], set()
        self._began_after = self.database.commits
        self.open_repositories(self._working)
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        self._working = None
        self._emitted, self._claimed = [], set()

    async def commit(self) -> None:
        database = self.database
        if database.commits != self._began_after:
            raise RuntimeError(
                "another transaction committed while this one was open: in memory, "
                "overlapping transactions cannot both commit"
            )
        database.committed = copy.deepcopy(self.state)
        database.outbox += self._emitted
        database.inbox |= self._claimed
        database.commits += 1
        self._emitted, self._claimed = [], set()
        self._began_after = database.commits

    async def emit(self, subject: str, payload: BaseModel, message_id: UUID) -> None:
        self.state  # noqa: B018 -- refuses outside a transaction
        row = payload.model_dump(mode="json")
        self._emitted.append(Emitted(subject, row, message_id, correlation.current()))

    async def claim(self, consumer: str, message_id: str) -> bool:
        self.state  # noqa: B018 -- refuses outside a transaction
        key = (consumer, message_id)
        if key in self.database.inbox or key in self._claimed:
            return False
        self._claimed.add(key)
        return True

    # What tests look at: the database's committed state.

    @property
    def committed(self) -> State:
        return self.database.committed

    @property
    def outbox(self) -> list[Emitted]:
        return self.database.outbox

    @property
    def inbox(self) -> set[tuple[str, str]]:
        return self.database.inbox

    @property
    def commits(self) -> int:
        return self.database.commits

    def subjects(self) -> list[str]:
        return [m.subject for m in self.database.outbox]


def schema_differences(connection: Connection, metadata: MetaData, schema: str) -> list[object]:
    """What Alembic's autogenerate finds between a service's tables (`metadata`) and its
    migrated `schema` (tables, columns, types, indexes): empty when the migrations create
    exactly what the code uses. Synchronous: `await connection.run_sync(...)`."""
    context = MigrationContext.configure(
        connection,
        opts={
            "include_schemas": True,
            "include_name": lambda name, type_, _parent: type_ != "schema" or name == schema,
            "version_table_schema": schema,
            "compare_type": True,
        },
    )
    return list(compare_metadata(context, metadata))
