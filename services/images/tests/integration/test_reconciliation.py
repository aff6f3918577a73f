"""Lost webhooks, through the real servers: the sandbox never calls back
(`--sandbox-no-webhooks`), and the service's reconciliation loop finds the result anyway."""

from __future__ import annotations

from collections import Counter
from typing import Any
from uuid import uuid4

import pytest

from imagetron_contracts.models.images import (
    ImagePage,
    ImagineCommand,
    ListImagesQuery,
    Task,
    TaskQuery,
    TaskStatus,
)
from imagetron_contracts.streams import (
    RPC_IMAGES_IMAGES_LIST,
    RPC_IMAGES_IMAGINE,
    RPC_IMAGES_TASKS_GET,
)

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def stack_settings() -> dict[str, Any]:
    return {
        "reconcile_after_seconds": 1.0,
        "reconcile_interval_seconds": 0.2,
        "task_deadlines": {"goapi.imagine": 4.0},
    }


@pytest.fixture
async def forwarding(stack: Any) -> Any:
    stack.gateway.forward = True
    try:
        yield stack
    finally:
        stack.gateway.forward = False


async def run(stack: Any, wait_for: Any, prompt_text: str) -> tuple[Any, Task, ImagePage]:
    owner = uuid4()
    created = await stack.rpc.call(
        RPC_IMAGES_IMAGINE,
        ImagineCommand(owner_id=owner, prompt_id=uuid4(), prompt_text=prompt_text),
        Task,
    )

    async def settled() -> Task | None:
        task = await stack.rpc.call(
            RPC_IMAGES_TASKS_GET, TaskQuery(owner_id=owner, task_id=created.id), Task
        )
        return task if task.status in (TaskStatus.completed, TaskStatus.failed) else None

    task = await wait_for(settled, within=30)
    page = await stack.rpc.call(
        RPC_IMAGES_IMAGES_LIST, ListImagesQuery(owner_id=owner, task_id=created.id), ImagePage
    )
    return owner, task, page


async def test_a_task_whose_webhooks_are_lost_completes_by_reconciliation(
    forwarding: Any, wait_for: Any
) -> None:
    stack = forwarding
    owner, task, _ = await run(stack, wait_for, "a quiet harbour --sandbox-no-webhooks")
    assert task.status is TaskStatus.completed
    assert stack.gateway.bodies(task.id) == []  # no callback ever came

    async def stored() -> ImagePage | None:
        page = await stack.rpc.call(
            RPC_IMAGES_IMAGES_LIST, ListImagesQuery(owner_id=owner, task_id=task.id), ImagePage
        )
        return page if sum(i.is_persisted for i in page.items) == 5 else None

    await wait_for(stored, within=30)
    counts = Counter(e["type"] for _, e in await stack.events(owner))
    assert counts["task.completed"] == 1
    assert counts["image.persisted"] == 5


async def test_a_failure_without_webhooks_is_found_too(forwarding: Any, wait_for: Any) -> None:
    stack = forwarding
    owner, task, page = await run(stack, wait_for, "a storm --sandbox-no-webhooks --sandbox-fail")
    assert task.status is TaskStatus.failed
    assert task.error == "failed to generate image"
    assert page.items == []
    counts = Counter(e["type"] for _, e in await stack.events(owner))
    assert counts["task.failed"] == 1


async def test_reconciliation_and_webhooks_together_apply_everything_once(
    forwarding: Any, wait_for: Any
) -> None:
    """Webhooks delayed past the reconciliation deadline: both report the same outcome."""
    stack = forwarding
    owner, task, _ = await run(stack, wait_for, "a late tide --sandbox-webhook-delay=1500")
    assert task.status is TaskStatus.completed

    async def all_webhooks_in() -> bool:
        return any(b["data"]["status"] == "completed" for b in stack.gateway.bodies(task.id))

    await wait_for(all_webhooks_in, within=30)
    counts = Counter(e["type"] for _, e in await stack.events(owner, settle=1.0))
    assert counts["task.completed"] == 1
    assert counts["task.submitted"] == 1


async def test_a_task_stuck_at_the_provider_fails_at_its_deadline(
    forwarding: Any, wait_for: Any
) -> None:
    stack = forwarding
    owner, task, page = await run(stack, wait_for, "a frozen sea --sandbox-stuck")
    assert task.status is TaskStatus.failed
    assert task.error == (
        "Not finished within 4 s of getting a slot (the deadline of goapi imagine tasks)."
    )
    assert task.actions == []
    assert page.items == []
    counts = Counter(e["type"] for _, e in await stack.events(owner))
    assert (counts["task.progress"] > 0, counts["task.failed"]) == (True, 1)
