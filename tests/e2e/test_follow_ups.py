"""Upscale and variation of a completed grid, black-box over HTTP against the embedded
stack, with the invalid follow-ups answered as problems."""

from __future__ import annotations

import asyncio
import uuid

import httpx
import pytest

pytestmark = [pytest.mark.e2e]


async def wait_task(client: httpx.AsyncClient, task_id: str, status: str) -> dict:
    for _ in range(300):
        task = (await client.get(f"/api/v1/tasks/{task_id}")).json()
        if task["status"] == status:
            return task
        await asyncio.sleep(0.1)
    raise AssertionError(f"task {task_id} never became {status}: {task}")


async def test_upscale_and_variation_of_a_completed_grid(clients):
    artist, stranger = clients
    prompt = await artist.post("/api/v1/prompts", json={"text": "a fig on slate, side light"})
    assert prompt.status_code == 201, prompt.text
    grid = await artist.post(f"/api/v1/prompts/{prompt.json()['id']}/imagine", json={})
    assert grid.status_code == 202, grid.text
    grid_id = grid.json()["id"]

    early = await artist.post(f"/api/v1/tasks/{grid_id}/upscale", json={"index": 1})
    if early.status_code != 202:  # it may have completed already; otherwise not yet a grid
        assert early.status_code == 409, early.text
        assert early.headers["content-type"] == "application/problem+json"
    done = await wait_task(artist, grid_id, "completed")
    assert "upscale2" in done["actions"]
    assert "reroll" in done["actions"]

    upscale = await artist.post(f"/api/v1/tasks/{grid_id}/upscale", json={"index": 2})
    assert upscale.status_code == 202, upscale.text
    variation = await artist.post(
        f"/api/v1/tasks/{grid_id}/variation", json={"index": 3, "strength": "subtle"}
    )
    assert variation.status_code == 202, variation.text
    assert (
        await artist.post(f"/api/v1/tasks/{grid_id}/upscale", json={"index": 5})
    ).status_code == 422
    assert (
        await stranger.post(f"/api/v1/tasks/{grid_id}/upscale", json={"index": 1})
    ).status_code == 404
    assert (await artist.post(f"/api/v1/tasks/{uuid.uuid4()}/reroll")).status_code == 404

    up = await wait_task(artist, upscale.json()["id"], "completed")
    assert (up["origin_task_id"], up["origin_index"], up["actions"]) == (grid_id, 2, [])
    var = await wait_task(artist, variation.json()["id"], "completed")
    assert var["variation_strength"] == "subtle"

    async def images_of(task_id: str, count: int) -> list[dict]:
        for _ in range(300):
            page = (await artist.get("/api/v1/images", params={"task_id": task_id})).json()
            if len([i for i in page["items"] if i["is_persisted"]]) == count:
                return page["items"]
            await asyncio.sleep(0.1)
        raise AssertionError(f"the images of {task_id} were not all stored")

    [image] = await images_of(up["id"], 1)
    assert (image["kind"], image["index"]) == ("upscale", 2)
    content = await artist.get(f"/api/v1/images/{image['id']}/content")
    assert content.status_code == 200
    assert content.content.startswith(b"\x89PNG")
    assert len(await images_of(var["id"], 5)) == 5
    by_kind = await artist.get("/api/v1/images", params={"task_id": up["id"], "kind": "upscale"})
    assert [i["id"] for i in by_kind.json()["items"]] == [image["id"]]
    # An upscale is not a grid: no upscale of it.
    again = await artist.post(f"/api/v1/tasks/{up['id']}/upscale", json={"index": 1})
    assert again.status_code == 409
