"""Deleting what a table no longer needs, a bounded batch per transaction, until nothing is
left: one periodic round keeps up however much piled up since the last, and no transaction
holds more than a batch of rows."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

from sqlalchemy import ColumnElement, Select, Table, delete, literal
from sqlalchemy.ext.asyncio import AsyncSession

from imagetron_platform.ports import Transaction

#: Rows deleted per transaction unless a job says otherwise.
PRUNE_BATCH = 1000

U = TypeVar("U", bound=Transaction)


async def remove_in_batches(
    open_uow: Callable[[], U],
    remove: Callable[[U, int], Awaitable[int]],
    batch: int = PRUNE_BATCH,
) -> int:
    """Call `remove(uow, batch)` (delete up to `batch` rows, return how many) in a
    transaction of its own, committed, until a batch comes back short; how many in all."""
    if batch < 1:
        raise ValueError(f"a batch deletes at least one row, not {batch}")
    total = 0
    while True:
        async with open_uow() as uow:
            removed = await remove(uow, batch)
            await uow.commit()
        total += removed
        if removed < batch:
            return total


async def delete_batch(
    session: AsyncSession, table: Table, key: ColumnElement[Any], rows: Select[Any], batch: int
) -> int:
    """Delete up to `batch` of the rows `rows` selects (by their `key`: a column, or a
    `tuple_` of the primary key's columns); how many. Rows another process is deleting now
    are skipped (SKIP LOCKED): it has them."""
    chosen = rows.limit(batch).with_for_update(skip_locked=True)
    result = await session.execute(delete(table).where(key.in_(chosen)).returning(literal(1)))
    return len(result.all())
