"""Upscale, variation, reroll, cancel and image retry through the real servers and the
sandbox (the gateway stand-in forwards every webhook)."""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import AsyncIterator
from typing import Any
from uuid import UUID, uuid4

import pytest

from imagetron_contracts.models.common import RpcReply
from imagetron_contracts.models.images import (
    Image,
    ImageKind,
    ImagePage,
    ImageQuery,
    ImagineCommand,
    ListImagesQuery,
    RerollCommand,
    Task,
    TaskAction,
    TaskCommand,
    TaskQuery,
    TaskStatus,
    UpscaleCommand,
    VariationCommand,
    VariationStrength,
)
from imagetron_contracts.streams import (
    RPC_IMAGES_IMAGES_LIST,
    RPC_IMAGES_IMAGES_RETRY,
    RPC_IMAGES_IMAGINE,
    RPC_IMAGES_TASKS_CANCEL,
    RPC_IMAGES_TASKS_GET,
    RPC_IMAGES_TASKS_REROLL,
    RPC_IMAGES_TASKS_UPSCALE,
    RPC_IMAGES_TASKS_VARIATION,
)
from imagetron_platform.errors import Conflict, NotFound

pytestmark = pytest.mark.integration

GRID_ACTIONS = [
    *(TaskAction(f"upscale{i}") for i in range(1, 5)),
    *(TaskAction(f"variation{i}") for i in range(1, 5)),
    TaskAction.reroll,
]


@pytest.fixture
async def forwarding(stack: Any) -> AsyncIterator[Any]:
    stack.gateway.forward = True
    try:
        yield stack
    finally:
        stack.gateway.forward = False


async def imagine(stack: Any, owner: UUID, prompt_text: str = "a lighthouse in fog") -> Task:
    cmd = ImagineCommand(owner_id=owner, prompt_id=uuid4(), prompt_text=prompt_text)
    return await stack.rpc.call(RPC_IMAGES_IMAGINE, cmd, Task)


async def get_task(stack: Any, owner: UUID, task_id: UUID) -> Task:
    return await stack.rpc.call(
        RPC_IMAGES_TASKS_GET, TaskQuery(owner_id=owner, task_id=task_id), Task
    )


async def wait_status(
    stack: Any, wait_for: Any, owner: UUID, task_id: UUID, status: TaskStatus
) -> Task:
    async def reached() -> Task | None:
        task = await get_task(stack, owner, task_id)
        return task if task.status is status else None

    return await wait_for(reached, within=30)


async def stored_images(stack: Any, wait_for: Any, owner: UUID, task_id: UUID, n: int) -> Any:
    async def stored() -> list[Image] | None:
        page = await stack.rpc.call(
            RPC_IMAGES_IMAGES_LIST, ListImagesQuery(owner_id=owner, task_id=task_id), ImagePage
        )
        done = [i for i in page.items if i.is_persisted]
        return page.items if len(page.items) == n and len(done) == n else None

    return await wait_for(stored, within=30)


async def test_upscale_variation_and_reroll_of_a_completed_grid(
    forwarding: Any, wait_for: Any
) -> None:
    stack, owner = forwarding, uuid4()
    grid = await imagine(stack, owner)
    grid = await wait_status(stack, wait_for, owner, grid.id, TaskStatus.completed)
    assert grid.actions == GRID_ACTIONS

    upscale, variation, reroll = await asyncio.gather(
        stack.rpc.call(
            RPC_IMAGES_TASKS_UPSCALE,
            UpscaleCommand(owner_id=owner, task_id=grid.id, index=2),
            Task,
        ),
        stack.rpc.call(
            RPC_IMAGES_TASKS_VARIATION,
            VariationCommand(
                owner_id=owner, task_id=grid.id, index=3, strength=VariationStrength.subtle
            ),
            Task,
        ),
        stack.rpc.call(
            RPC_IMAGES_TASKS_REROLL, RerollCommand(owner_id=owner, task_id=grid.id), Task
        ),
    )
    assert [
        (t.command, t.origin_task_id, t.origin_index) for t in (upscale, variation, reroll)
    ] == [
        (TaskCommand.upscale, grid.id, 2),
        (TaskCommand.variation, grid.id, 3),
        (TaskCommand.reroll, grid.id, None),
    ]
    assert variation.variation_strength is VariationStrength.subtle

    # The upscale yields one image, of kind upscale, at the chosen index.
    done = await wait_status(stack, wait_for, owner, upscale.id, TaskStatus.completed)
    assert done.actions == []
    [image] = await stored_images(stack, wait_for, owner, upscale.id, 1)
    assert (image.kind, image.index) == (ImageKind.upscale, 2)
    assert image.width is not None
    assert image.width > 256  # the sandbox's grid split is smaller than its upscale

    # Variation and reroll yield grids with follow-ups of their own.
    for follow_up in (variation, reroll):
        done = await wait_status(stack, wait_for, owner, follow_up.id, TaskStatus.completed)
        assert done.actions == GRID_ACTIONS
        found = await stored_images(stack, wait_for, owner, follow_up.id, 5)
        assert sorted((i.kind, i.index) for i in found) == [(ImageKind.grid, 0)] + [
            (ImageKind.version, n) for n in range(1, 5)
        ]

    events = await stack.events(owner)
    counts = Counter(e["type"] for _, e in events)
    assert counts["task.created"] == counts["task.submitted"] == counts["task.completed"] == 4


async def test_invalid_follow_ups_are_clear_problems(forwarding: Any, wait_for: Any) -> None:
    stack, owner = forwarding, uuid4()
    pending = await imagine(stack, owner, "a slow start --sandbox-queue-delay=3000")
    with pytest.raises(Conflict, match="only a completed grid"):
        await stack.rpc.call(
            RPC_IMAGES_TASKS_UPSCALE,
            UpscaleCommand(owner_id=owner, task_id=pending.id, index=1),
            Task,
        )
    grid = await imagine(stack, owner)
    await wait_status(stack, wait_for, owner, grid.id, TaskStatus.completed)
    with pytest.raises(NotFound):
        await stack.rpc.call(
            RPC_IMAGES_TASKS_UPSCALE,
            UpscaleCommand(owner_id=uuid4(), task_id=grid.id, index=1),
            Task,
        )
    # An index out of range never gets past the contract's schema.
    message = await stack.broker.request(
        {"owner_id": str(owner), "task_id": str(grid.id), "index": 5},
        RPC_IMAGES_TASKS_UPSCALE,
        timeout=5.0,
    )
    reply = RpcReply.model_validate_json(message.body)
    assert reply.problem is not None
    assert reply.problem.status == 422

    upscale = await stack.rpc.call(
        RPC_IMAGES_TASKS_UPSCALE, UpscaleCommand(owner_id=owner, task_id=grid.id, index=1), Task
    )
    await wait_status(stack, wait_for, owner, upscale.id, TaskStatus.completed)
    with pytest.raises(Conflict, match="not a grid"):
        await stack.rpc.call(
            RPC_IMAGES_TASKS_UPSCALE,
            UpscaleCommand(owner_id=owner, task_id=upscale.id, index=1),
            Task,
        )


async def test_cancel_a_submitted_task_at_the_provider(forwarding: Any, wait_for: Any) -> None:
    stack, owner = forwarding, uuid4()
    created = await imagine(stack, owner, "a patient heron --sandbox-queue-delay=5000")
    submitted = await wait_status(stack, wait_for, owner, created.id, TaskStatus.submitted)
    assert submitted.actions == [TaskAction.cancel]

    cancelled = await stack.rpc.call(
        RPC_IMAGES_TASKS_CANCEL, TaskQuery(owner_id=owner, task_id=created.id), Task
    )
    assert (cancelled.status, cancelled.actions) == (TaskStatus.cancelled, [])

    # The sandbox ends its task cancelled and says so by webhook; applying it changes nothing.
    async def provider_cancelled() -> bool:
        return any(b["data"]["status"] == "cancelled" for b in stack.gateway.bodies(created.id))

    await wait_for(provider_cancelled)
    with pytest.raises(Conflict):
        await stack.rpc.call(
            RPC_IMAGES_TASKS_CANCEL, TaskQuery(owner_id=owner, task_id=created.id), Task
        )

    async def settled() -> list[str] | None:
        types = [e["type"] for _, e in await stack.events(owner, settle=0.3)]
        return types if "task.cancelled" in types else None

    types = await wait_for(settled)
    await asyncio.sleep(0.5)  # room for the cancelled webhook to be (not) applied
    assert (await get_task(stack, owner, created.id)).status is TaskStatus.cancelled
    types = [e["type"] for _, e in await stack.events(owner)]
    assert Counter(types) == {"task.created": 1, "task.submitted": 1, "task.cancelled": 1}


async def test_a_failed_image_is_stored_when_retried(forwarding: Any, wait_for: Any) -> None:
    """Each image's first 3 downloads fail (= persist_max_deliveries): all are recorded
    failed; a retry on request then stores one, and a second retry is a conflict."""
    stack, owner = forwarding, uuid4()
    created = await imagine(stack, owner, "a chipped mug --sandbox-download-500=3")

    async def all_failed() -> list[Image] | None:
        page = await stack.rpc.call(
            RPC_IMAGES_IMAGES_LIST, ListImagesQuery(owner_id=owner, task_id=created.id), ImagePage
        )
        failed = [i for i in page.items if i.error and i.attempts == 3]
        return page.items if len(failed) == 5 else None

    images = await wait_for(all_failed, within=40)
    grid = next(i for i in images if i.kind is ImageKind.grid)
    queued = await stack.rpc.call(
        RPC_IMAGES_IMAGES_RETRY, ImageQuery(owner_id=owner, image_id=grid.id), Image
    )
    assert queued.is_persisted is False

    async def stored() -> Image | None:
        page = await stack.rpc.call(
            RPC_IMAGES_IMAGES_LIST,
            ListImagesQuery(owner_id=owner, task_id=created.id, kind=ImageKind.grid),
            ImagePage,
        )
        return page.items[0] if page.items[0].is_persisted else None

    image = await wait_for(stored, within=20)
    assert (image.attempts, image.error) == (4, None)
    with pytest.raises(Conflict, match="already stored"):
        await stack.rpc.call(
            RPC_IMAGES_IMAGES_RETRY, ImageQuery(owner_id=owner, image_id=grid.id), Image
        )
    with pytest.raises(NotFound):
        await stack.rpc.call(
            RPC_IMAGES_IMAGES_RETRY, ImageQuery(owner_id=uuid4(), image_id=grid.id), Image
        )
