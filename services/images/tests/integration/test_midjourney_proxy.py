"""The images service on midjourney-proxy, both of its APIs, through the real servers and
the sandbox's midjourney-proxy face: the fork (trueai-org v10+: buttons, split images,
cancel) at the sandbox's `/mj`, the original (novicezk: `change`) at `/novicezk/mj`. The
adapter finds out which one it talks to (`auto`)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any
from uuid import UUID, uuid4

import pytest

from imagetron_contracts.models.images import (
    ImageKind,
    ImagePage,
    ImagineCommand,
    ListImagesQuery,
    RerollCommand,
    Task,
    TaskCommand,
    TaskQuery,
    TaskStatus,
    UpscaleCommand,
    VariationCommand,
)
from imagetron_contracts.streams import (
    RPC_IMAGES_IMAGES_LIST,
    RPC_IMAGES_IMAGINE,
    RPC_IMAGES_TASKS_CANCEL,
    RPC_IMAGES_TASKS_GET,
    RPC_IMAGES_TASKS_REROLL,
    RPC_IMAGES_TASKS_UPSCALE,
    RPC_IMAGES_TASKS_VARIATION,
)

pytestmark = pytest.mark.integration

FORK, ORIGINAL = "fork", "original"


@pytest.fixture(scope="module", params=[FORK, ORIGINAL])
def stack_settings(request: pytest.FixtureRequest) -> dict[str, Any]:
    path = "/" if request.param == FORK else "/novicezk"
    return {"provider": "midjourney_proxy", "midjourney_proxy_base_url": path}


@pytest.fixture
async def proxy(stack: Any) -> AsyncIterator[Any]:
    stack.gateway.forward = True
    try:
        yield stack
    finally:
        stack.gateway.forward = False


def flavour(stack: Any) -> str:
    return ORIGINAL if stack.settings.midjourney_proxy_base_url.endswith("/novicezk") else FORK


async def finished(stack: Any, wait_for: Any, owner: UUID, task_id: UUID) -> Task:
    async def done() -> Task | None:
        task = await stack.rpc.call(
            RPC_IMAGES_TASKS_GET, TaskQuery(owner_id=owner, task_id=task_id), Task
        )
        return task if task.status in (TaskStatus.completed, TaskStatus.failed) else None

    task = await wait_for(done, within=30)
    assert task.status is TaskStatus.completed, task.error
    return task


async def kinds(stack: Any, owner: UUID, task_id: UUID) -> list[tuple[ImageKind, int]]:
    page = await stack.rpc.call(
        RPC_IMAGES_IMAGES_LIST, ListImagesQuery(owner_id=owner, task_id=task_id), ImagePage
    )
    return sorted((image.kind, image.index) for image in page.items)


async def test_imagine_and_every_follow_up(proxy: Any, wait_for: Any) -> None:
    stack, owner = proxy, uuid4()
    cmd = ImagineCommand(owner_id=owner, prompt_id=uuid4(), prompt_text="a heron at dusk")
    created = await stack.rpc.call(RPC_IMAGES_IMAGINE, cmd, Task)
    grid = await finished(stack, wait_for, owner, created.id)
    versions = [(ImageKind.version, i) for i in range(1, 5)]
    # The fork lists the grid's four images; the original returns the grid alone.
    expected = [(ImageKind.grid, 0), *(versions if flavour(stack) == FORK else [])]
    assert await kinds(stack, owner, grid.id) == expected

    upscale = await stack.rpc.call(
        RPC_IMAGES_TASKS_UPSCALE, UpscaleCommand(owner_id=owner, task_id=grid.id, index=2), Task
    )
    variation = await stack.rpc.call(
        RPC_IMAGES_TASKS_VARIATION,
        VariationCommand(owner_id=owner, task_id=grid.id, index=3),
        Task,
    )
    reroll = await stack.rpc.call(
        RPC_IMAGES_TASKS_REROLL, RerollCommand(owner_id=owner, task_id=grid.id), Task
    )
    for task in (upscale, variation, reroll):
        done = await finished(stack, wait_for, owner, task.id)
        assert done.origin_task_id == grid.id
    assert await kinds(stack, owner, upscale.id) == [(ImageKind.upscale, 2)]
    # A fork reports a reroll as an `IMAGINE` pressed from a reroll button: still ours.
    assert (await finished(stack, wait_for, owner, reroll.id)).command is TaskCommand.reroll
    # Only this test's tasks: the stand-in gateway is shared, and another test's GoAPI task
    # may still be reported to it (its callbacks have no `action`).
    ours = {grid.id, upscale.id, variation.id, reroll.id}
    reported = {r["body"]["action"] for r in stack.gateway.received if r["task_id"] in ours}
    assert reported == (
        {"IMAGINE", "UPSCALE", "VARIATION"} | (set() if flavour(stack) == FORK else {"REROLL"})
    )


async def test_cancel_stops_the_task_where_the_proxy_can(proxy: Any, wait_for: Any) -> None:
    stack, owner = proxy, uuid4()
    cmd = ImagineCommand(
        owner_id=owner, prompt_id=uuid4(), prompt_text="a patient heron --sandbox-queue-delay=5000"
    )
    created = await stack.rpc.call(RPC_IMAGES_IMAGINE, cmd, Task)

    async def submitted() -> Task | None:
        task = await stack.rpc.call(
            RPC_IMAGES_TASKS_GET, TaskQuery(owner_id=owner, task_id=created.id), Task
        )
        return task if task.provider_task_id else None

    task = await wait_for(submitted, within=30)
    cancelled = await stack.rpc.call(
        RPC_IMAGES_TASKS_CANCEL, TaskQuery(owner_id=owner, task_id=created.id), Task
    )
    assert cancelled.status is TaskStatus.cancelled
    fetched = await stack.http.get(
        f"{stack.settings.midjourney_proxy_base_url}/mj/task/{task.provider_task_id}/fetch"
    )
    if flavour(stack) == FORK:
        # Stopped there too (trueai-org fails it with "取消任务").
        assert (fetched.json()["status"], fetched.json()["failReason"]) == ("FAILURE", "取消任务")
    else:
        # The original cannot cancel: the task runs on there, and is ignored here.
        assert fetched.json()["status"] in ("SUBMITTED", "IN_PROGRESS", "SUCCESS")
