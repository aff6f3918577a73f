"""The midjourney-proxy face: the fork's API under /mj, the original's under /novicezk/mj."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

FORK, ORIGINAL = "/mj", "/novicezk/mj"


async def eventually(check: Callable[[], Awaitable[Any]], within: float = 5.0) -> Any:
    """Await `check()` until it returns something truthy (returned) or time runs out."""
    deadline = asyncio.get_running_loop().time() + within
    while not (result := await check()):
        assert asyncio.get_running_loop().time() < deadline, "condition not met in time"
        await asyncio.sleep(0.02)
    return result


async def submit(sandbox, prefix: str, kind: str, body: dict[str, Any]) -> Any:
    return await sandbox.http.post(f"{sandbox.base_url}{prefix}/submit/{kind}", json=body)


async def fetch(sandbox, prefix: str, task_id: str) -> Any:
    response = await sandbox.http.get(f"{sandbox.base_url}{prefix}/task/{task_id}/fetch")
    assert response.status_code == 200, response.text
    return response.json() if response.content else None


async def finished(sandbox, prefix: str, task_id: str) -> dict[str, Any]:
    async def done() -> Any:
        task = await fetch(sandbox, prefix, task_id)
        return task if task["status"] in ("SUCCESS", "FAILURE") else None

    return await eventually(done)


async def imagine(sandbox, prefix: str, prompt: str = "a red fox --ar 3:2 --relax", **extra):
    response = await submit(
        sandbox, prefix, "imagine", {"prompt": prompt, "base64Array": [], **extra}
    )
    assert response.status_code == 200, response.text
    answer = response.json()
    assert answer["code"] == 1, answer
    return answer["result"]


async def test_the_fork_notifies_its_task_json_without_headers_and_lists_buttons_and_splits(
    sandbox, receiver
):
    hook = f"{receiver.url}?token=per-task"
    task_id = await imagine(sandbox, FORK, notifyHook=hook, state="ours")

    def deliveries() -> list[Any]:
        return [d for d in receiver.deliveries if d.json.get("id") == task_id]

    async def succeeded() -> bool:
        return any(d.json["status"] == "SUCCESS" for d in deliveries())

    await eventually(succeeded)
    bodies = [d.json for d in deliveries()]
    assert bodies[0]["status"] == "SUBMITTED"
    assert "IN_PROGRESS" in {b["status"] for b in bodies}
    assert all("x-webhook-secret" not in d.headers for d in deliveries())
    done = bodies[-1]
    assert (done["action"], done["state"], done["progress"]) == ("IMAGINE", "ours", "100%")
    # The proxy echoes the notify hook (with whatever credentials it carries).
    assert done["properties"]["notifyHook"] == hook
    assert len(done["imageUrls"]) == 4
    assert done["imageUrl"].endswith("-grid.png")
    custom_ids = [b["customId"] for b in done["buttons"]]
    assert f"MJ::JOB::upsample::2::{task_id}" in custom_ids
    assert f"MJ::JOB::reroll::0::{task_id}::SOLO" in custom_ids
    assert done == await fetch(sandbox, FORK, task_id)


async def test_the_forks_follow_ups_press_buttons(sandbox):
    origin = await imagine(sandbox, FORK)
    await finished(sandbox, FORK, origin)
    response = await submit(
        sandbox, FORK, "action", {"taskId": origin, "customId": f"MJ::JOB::upsample::2::{origin}"}
    )
    upscale = response.json()["result"]
    done = await finished(sandbox, FORK, upscale)
    assert (done["action"], done["status"], done["parentId"]) == ("UPSCALE", "SUCCESS", origin)
    assert done["properties"]["custom_id"] == f"MJ::JOB::upsample::2::{origin}"
    assert done["imageUrls"] is None  # one image

    reroll_id = f"MJ::JOB::reroll::0::{origin}::SOLO"
    response = await submit(sandbox, FORK, "action", {"taskId": origin, "customId": reroll_id})
    reroll = await finished(sandbox, FORK, response.json()["result"])
    # A reroll of an imagine keeps the action IMAGINE; the custom id says what it is.
    assert (reroll["action"], reroll["properties"]["custom_id"]) == ("IMAGINE", reroll_id)
    assert len(reroll["imageUrls"]) == 4


async def test_the_fork_refuses_what_it_does_not_know(sandbox):
    missing = await submit(
        sandbox, FORK, "action", {"taskId": "nope", "customId": "MJ::JOB::upsample::1::nope"}
    )
    assert (missing.status_code, missing.json()["code"]) == (404, 3)
    origin = await imagine(sandbox, FORK)
    await finished(sandbox, FORK, origin)
    wrong_hash = await submit(
        sandbox, FORK, "action", {"taskId": origin, "customId": "MJ::JOB::upsample::1::other"}
    )
    assert wrong_hash.json()["code"] == 4
    # v10 removed the original's change endpoint.
    gone = await submit(
        sandbox, FORK, "change", {"taskId": origin, "action": "UPSCALE", "index": 1}
    )
    assert gone.status_code == 404


async def test_the_fork_cancels_an_unfinished_task_as_trueai_does(sandbox):
    task_id = await imagine(sandbox, FORK, prompt="a slow fox --sandbox-queue-delay=3000")
    response = await sandbox.http.post(f"{sandbox.base_url}{FORK}/task/{task_id}/cancel")
    assert (response.status_code, response.content) == (200, b"")
    done = await fetch(sandbox, FORK, task_id)
    assert (done["status"], done["failReason"]) == ("FAILURE", "取消任务")


async def test_the_original_changes_its_tasks_and_has_no_buttons_or_cancel(sandbox):
    origin = await imagine(sandbox, ORIGINAL)
    done = await finished(sandbox, ORIGINAL, origin)
    assert "buttons" not in done
    assert "imageUrls" not in done
    response = await submit(
        sandbox, ORIGINAL, "change", {"taskId": origin, "action": "VARIATION", "index": 3}
    )
    assert response.json()["description"] == "成功"
    variation = await finished(sandbox, ORIGINAL, response.json()["result"])
    assert (variation["action"], variation["status"]) == ("VARIATION", "SUCCESS")
    for missing in ("submit/action", f"task/{origin}/cancel"):
        answer = await sandbox.http.post(f"{sandbox.base_url}{ORIGINAL}/{missing}", json={})
        assert answer.status_code == 404
    # Each face knows only its own tasks.
    assert await fetch(sandbox, FORK, origin) is None
