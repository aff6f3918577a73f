"""Deleting what a table no longer needs, a bounded batch per transaction, until nothing is
left: one periodic round keeps up however much piled up since the last, and no transaction
holds more than a batch of rows."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import TypeVar

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
