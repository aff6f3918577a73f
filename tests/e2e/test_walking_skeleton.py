"""The walking skeleton, black-box: HTTP and SSE against the embedded stack only.

prompt → imagine → provider (sandbox) → webhook → gateway → JetStream → images → S3,
with every step visible on the owner's event stream and invisible to everyone else."""

from __future__ import annotations

import asyncio
import hashlib
import json
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

import httpx
import pytest
from httpx_sse import aconnect_sse

from imagetron.stack import EmbeddedStack, StackPorts

pytestmark = [pytest.mark.e2e]

EVENT_TIMEOUT = 60.0


@pytest.fixture(scope="module")
def stack(tmp_path_factory) -> EmbeddedStack:
    root = tmp_path_factory.mktemp("imagetron")
    with EmbeddedStack(root, StackPorts.free(), admin_api_key="itk_e2e-admin-key") as running:
        yield running


@dataclass
class EventLog:
    """Everything one SSE connection received, in order."""

    events: list[tuple[int, str, dict]] = field(default_factory=list)
    changed: asyncio.Condition = field(default_factory=asyncio.Condition)

    async def wait_for(self, predicate, timeout: float = EVENT_TIMEOUT) -> None:
        async with self.changed:
            await asyncio.wait_for(self.changed.wait_for(lambda: predicate(self.events)), timeout)


async def _listen(client: httpx.AsyncClient, log: EventLog, connected: asyncio.Event) -> None:
    async with aconnect_sse(client, "GET", "/api/v1/events", timeout=None) as source:
        assert source.response.status_code == 200
        assert source.response.headers["content-type"].startswith("text/event-stream")
        connected.set()
        async for sse in source.aiter_sse():
            if not sse.event or sse.event == "message":
                continue
            async with log.changed:
                log.events.append((int(sse.id), sse.event, json.loads(sse.data)))
                log.changed.notify_all()


@pytest.fixture
async def clients(stack) -> AsyncIterator[tuple[httpx.AsyncClient, httpx.AsyncClient]]:
    admin_headers = {"Authorization": f"Bearer {stack.admin_api_key}"}
    async with httpx.AsyncClient(base_url=stack.gateway_url, headers=admin_headers) as admin:
        created = await admin.post("/api/v1/users", json={"name": "artist"})
        assert created.status_code == 201, created.text
        other = await admin.post("/api/v1/users", json={"name": "someone else"})
        assert other.status_code == 201, other.text
    async with (
        httpx.AsyncClient(
            base_url=stack.gateway_url,
            headers={"Authorization": f"Bearer {created.json()['api_key']}"},
            timeout=30,
        ) as artist,
        httpx.AsyncClient(
            base_url=stack.gateway_url,
            headers={"Authorization": f"Bearer {other.json()['api_key']}"},
            timeout=30,
        ) as stranger,
    ):
        yield artist, stranger


async def test_prompt_to_persisted_images_over_http_and_sse(stack, clients):
    artist, stranger = clients
    mine, theirs = EventLog(), EventLog()
    mine_connected, theirs_connected = asyncio.Event(), asyncio.Event()
    listeners = [
        asyncio.create_task(_listen(artist, mine, mine_connected)),
        asyncio.create_task(_listen(stranger, theirs, theirs_connected)),
    ]
    try:
        await asyncio.wait_for(asyncio.gather(mine_connected.wait(), theirs_connected.wait()), 10)

        prompt = await artist.post(
            "/api/v1/prompts", json={"text": "a pear on a linen cloth, morning light"}
        )
        assert prompt.status_code == 201, prompt.text
        prompt_id = prompt.json()["id"]

        accepted = await artist.post(
            f"/api/v1/prompts/{prompt_id}/imagine", json={"aspect_ratio": "1:1"}
        )
        assert accepted.status_code == 202, accepted.text
        task = accepted.json()
        assert task["status"] == "pending"
        assert task["prompt_id"] == prompt_id
        task_id = task["id"]

        def task_events(events):
            return [e for e in events if e[2].get("task", {}).get("id") == task_id]

        def image_events(events):
            return [e for e in events if e[2].get("image", {}).get("task_id") == task_id]

        await mine.wait_for(
            lambda ev: (
                any(t == "task.completed" for _, t, _ in task_events(ev))
                and len([e for e in image_events(ev) if e[1] == "image.persisted"]) == 5
            )
        )

        # Order and shape of what the browser saw.
        seen = task_events(mine.events)
        types = [t for _, t, _ in seen]
        assert types[0] == "task.created"
        assert "task.submitted" in types
        assert "task.progress" in types
        assert types.index("task.submitted") < types.index("task.completed")
        ids = [seq for seq, _, _ in mine.events]
        assert ids == sorted(set(ids)), "SSE ids must strictly increase"

        # The REST view agrees.
        got = await artist.get(f"/api/v1/tasks/{task_id}")
        assert got.status_code == 200
        assert got.json()["status"] == "completed"
        assert got.json()["progress"] == 100

        listed = await artist.get("/api/v1/images", params={"task_id": task_id})
        assert listed.status_code == 200, listed.text
        images = listed.json()["items"]
        assert len(images) == 5
        assert sorted((i["kind"], i["index"]) for i in images) == [
            ("grid", 0),
            ("version", 1),
            ("version", 2),
            ("version", 3),
            ("version", 4),
        ]
        for image in images:
            assert image["is_persisted"] is True, image
            assert image["content_type"] == "image/png"
            assert min(image["width"], image["height"], image["bytes"]) > 0
            content = await artist.get(
                f"/api/v1/images/{image['id']}/content", follow_redirects=True
            )
            assert content.status_code == 200
            assert content.content.startswith(b"\x89PNG\r\n\x1a\n")
            assert len(content.content) == image["bytes"]
            assert hashlib.sha256(content.content).hexdigest() == image["sha256"]
        grid = next(i for i in images if i["kind"] == "grid")
        version = next(i for i in images if i["kind"] == "version")
        assert grid["width"] == 2 * version["width"]

        # Someone else sees none of it.
        for path in (
            f"/api/v1/prompts/{prompt_id}",
            f"/api/v1/tasks/{task_id}",
            f"/api/v1/images/{grid['id']}",
            f"/api/v1/images/{grid['id']}/content",
        ):
            response = await stranger.get(path)
            assert response.status_code == 404, (path, response.text)
            assert response.headers["content-type"].startswith("application/problem+json")
        refused = await stranger.post(f"/api/v1/prompts/{prompt_id}/imagine")
        assert refused.status_code == 404
        assert (await stranger.get("/api/v1/images", params={"task_id": task_id})).json()[
            "items"
        ] == []
        assert theirs.events == []
    finally:
        for listener in listeners:
            listener.cancel()
        await asyncio.gather(*listeners, return_exceptions=True)


async def test_unauthenticated_and_bad_keys_are_refused(stack):
    async with httpx.AsyncClient(base_url=stack.gateway_url) as anonymous:
        for headers in (
            {},
            {"Authorization": "Bearer itk_not-a-key"},
            {"Authorization": "Basic x"},
        ):
            response = await anonymous.get("/api/v1/prompts", headers=headers)
            assert response.status_code == 401
            assert response.headers["content-type"].startswith("application/problem+json")
            assert response.json()["detail"]
        events = await anonymous.get("/api/v1/events", params={"token": "forged.token"})
        assert events.status_code == 401
