"""`remove_in_batches`: one round deletes until a batch comes back short, each batch in a
transaction of its own that is committed (a failing batch keeps the ones before it)."""

from __future__ import annotations

import pytest

from imagetron_platform.pruning import remove_in_batches
from imagetron_platform.testing import InMemoryDatabase, InMemoryUnitOfWork


def rows(count: int) -> tuple[InMemoryDatabase[list[int]], InMemoryUnitOfWork[list[int]]]:
    database = InMemoryDatabase(committed=list(range(count)))
    return database, InMemoryUnitOfWork(database)


async def remove(uow: InMemoryUnitOfWork[list[int]], batch: int) -> int:
    removed = uow.state[:batch]
    del uow.state[:batch]
    return len(removed)


@pytest.mark.parametrize(("count", "commits"), [(0, 1), (9, 1), (10, 2), (25, 3), (30, 4)])
async def test_a_round_removes_everything_a_committed_batch_at_a_time(count, commits) -> None:
    database, uow = rows(count)
    assert await remove_in_batches(lambda: uow, remove, batch=10) == count
    assert (database.committed, database.commits) == ([], commits)


async def test_a_failing_batch_keeps_the_batches_before_it() -> None:
    database, uow = rows(25)
    batches = 0

    async def remove_then_fail(unit: InMemoryUnitOfWork[list[int]], batch: int) -> int:
        nonlocal batches
        batches += 1
        if batches == 2:
            del unit.state[:batch]
            raise ConnectionError("the database went away")
        return await remove(unit, batch)

    with pytest.raises(ConnectionError):
        await remove_in_batches(lambda: uow, remove_then_fail, batch=10)
    assert database.committed == list(range(10, 25))


async def test_a_batch_removes_at_least_one_row() -> None:
    _, uow = rows(3)
    with pytest.raises(ValueError, match="at least one row"):
        await remove_in_batches(lambda: uow, remove, batch=0)
