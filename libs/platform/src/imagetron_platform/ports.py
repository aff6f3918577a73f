"""What every service's unit-of-work port has in common; each service extends it with its
own repositories (`class UnitOfWork(Transactional, Protocol): ...`). `SqlUnitOfWork` is the
production implementation; tests use in-memory fakes."""

from __future__ import annotations

from types import TracebackType
from typing import Protocol, Self
from uuid import UUID

from pydantic import BaseModel


class TransactionNotOpen(RuntimeError):
    """A unit of work used outside its `async with`."""

    def __init__(self) -> None:
        super().__init__("the unit of work is not open: use `async with uow:`")


class Transaction(Protocol):
    """One transaction: `async with uow:` ... `await uow.commit()`; leaving without a
    commit rolls back."""

    async def __aenter__(self) -> Self: ...

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None: ...

    async def commit(self) -> None: ...


class Transactional(Transaction, Protocol):
    """A transaction with an outbox and an inbox: messages emitted inside are published
    only if it commits, and a consumer's claim is recorded with the effect it guards."""

    async def emit(self, subject: str, payload: BaseModel, message_id: UUID) -> None: ...

    async def claim(self, consumer: str, message_id: str) -> bool:
        """Record that `consumer` applies `message_id` here; False if it already did."""
        ...
