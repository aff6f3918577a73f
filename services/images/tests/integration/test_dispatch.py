"""At most N tasks in flight at the provider: the rest wait, show their place, and are all
sent and finished in the end, oldest first."""

from __future__ import annotations

from typing import Any
from uuid import uuid4

import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import create_async_engine

from imagetron_contracts.models.images import (
    ImagineCommand,
    ListTasksQuery,
    Task,
    TaskPage,
    TaskStatus,
)
from imagetron_contracts.streams import RPC_IMAGES_IMAGINE, RPC_IMAGES_TASKS_LIST

pytestmark = pytest.mark.integration

SLOTS = 2


@pytest.fixture(scope="module")
async def stack_settings(migrated: str) -> dict[str, Any]:
    # Earlier modules may leave goapi tasks unfinished (their sandbox is gone): they would
    # hold slots for ever here. Test-database hygiene, before this module's service starts.
    engine = create_async_engine(migrated)
    try:
        async with engine.begin() as conn:
            await conn.execute(
                text("UPDATE images.tasks SET status = 'failed', error = 'test cleanup' "
                     "WHERE provider = 'goapi' "
                     "AND status IN ('pending', 'submitted', 'processing')")
            )  # fmt: skip
    finally:
        await engine.dispose()
    return {"max_in_flight_per_provider": SLOTS, "dispatch_interval_seconds": 0.2}


@pytest.fixture
async def forwarding(stack: Any) -> Any:
    stack.gateway.forward = True
    try:
        yield stack
    finally:
        stack.gateway.forward = False


async def test_tasks_beyond_the_bound_wait_their_turn(forwarding: Any, wait_for: Any) -> None:
    stack, owner, prompt = forwarding, uuid4(), uuid4()
    made = []
    for n in range(5):
        made.append(
            await stack.rpc.call(
                RPC_IMAGES_IMAGINE,
                ImagineCommand(
                    owner_id=owner, prompt_id=prompt,
                    prompt_text=f"lantern {n} --sandbox-queue-delay=600",
                ),
                Task,
            )
        )  # fmt: skip
    assert [t.queue_position for t in made] == [None, None, 1, 2, 3]

    seen_in_flight: list[int] = []

    async def all_completed() -> bool:
        page = await stack.rpc.call(
            RPC_IMAGES_TASKS_LIST, ListTasksQuery(owner_id=owner, prompt_id=prompt), TaskPage
        )
        in_flight = [
            t for t in page.items if t.status in (TaskStatus.submitted, TaskStatus.processing)
        ]
        seen_in_flight.append(len(in_flight))
        return all(t.status is TaskStatus.completed for t in page.items)

    await wait_for(all_completed, within=60, interval=0.05)
    assert max(seen_in_flight) <= SLOTS
    assert max(seen_in_flight) == SLOTS  # the bound was reached, and held

    page = await stack.rpc.call(
        RPC_IMAGES_TASKS_LIST, ListTasksQuery(owner_id=owner, prompt_id=prompt), TaskPage
    )
    assert all(t.queue_position is None for t in page.items)
    submitted = [e["task"]["id"] for _, e in await stack.events(owner)
                 if e["type"] == "task.submitted"]  # fmt: skip
    # The first two went at once (in either order); the rest only as slots freed up.
    assert set(submitted[:SLOTS]) == {str(t.id) for t in made[:SLOTS]}
    assert sorted(submitted) == sorted(str(t.id) for t in made)
