"""The walking skeleton, black-box: HTTP and SSE against the embedded stack only.

prompt → imagine → provider (sandbox) → webhook → gateway → JetStream → images → S3,
with every step visible on the owner's event stream and invisible to everyone else."""

from __future__ import annotations

import asyncio
import hashlib
import json
import uuid

import httpx
import pytest

from imagetron.testing import EventLog, listen

pytestmark = [pytest.mark.e2e]


async def test_prompt_to_persisted_images_over_http_and_sse(stack, clients):
    artist, stranger = clients
    mine, theirs = EventLog(), EventLog()
    mine_connected, theirs_connected = asyncio.Event(), asyncio.Event()
    listeners = [
        asyncio.create_task(listen(artist, mine, mine_connected)),
        asyncio.create_task(listen(stranger, theirs, theirs_connected)),
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


async def _run_to_completion(artist, log: EventLog, text: str) -> tuple[dict, list]:
    prompt = (await artist.post("/api/v1/prompts", json={"text": text})).json()
    task = (await artist.post(f"/api/v1/prompts/{prompt['id']}/imagine")).json()

    def mine(events):
        return [
            e
            for e in events
            if e[2].get("task", {}).get("id") == task["id"]
            or e[2].get("image", {}).get("task_id") == task["id"]
        ]

    await log.wait_for(
        lambda ev: (
            any(t == "task.completed" for _, t, _ in mine(ev))
            and sum(t == "image.persisted" for _, t, _ in mine(ev)) == 5
        )
    )
    return task, mine


async def test_duplicate_and_replayed_webhooks_change_nothing(stack, clients):
    artist, _ = clients
    log, connected = EventLog(), asyncio.Event()
    listener = asyncio.create_task(listen(artist, log, connected))
    try:
        await asyncio.wait_for(connected.wait(), 10)
        # The sandbox sends every webhook of this task three times, byte for byte.
        task, mine = await _run_to_completion(
            artist, log, "a quince on slate --sandbox-duplicate-webhooks=2"
        )
        await asyncio.sleep(1.0)  # let any late duplicate through
        counts: dict[str, int] = {}
        for _, kind, _ in mine(log.events):
            counts[kind] = counts.get(kind, 0) + 1
        assert counts["task.created"] == 1
        assert counts["task.submitted"] == 1
        assert counts["task.completed"] == 1
        assert counts["image.persisted"] == 5
        progress = [d["task"]["progress"] for _, k, d in mine(log.events) if k == "task.progress"]
        assert progress == sorted(set(progress)), "each progress step once, never backwards"

        # Now the provider re-sends its completion much later, with a new timestamp (so it is
        # not the same bytes): verified, accepted, and a no-op.
        before = (await artist.get(f"/api/v1/tasks/{task['id']}")).json()
        images_before = (await artist.get("/api/v1/images", params={"task_id": task["id"]})).json()
        seen_before = len(log.events)
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{stack.ports.sandbox}") as sandbox:
            provider_task = (
                await sandbox.get(
                    f"/api/v1/task/{before['provider_task_id']}",
                    headers={"x-api-key": "sandbox-goapi-key"},
                )
            ).json()["data"]
        from imagetron_platform.webhook_tokens import webhook_token

        token = webhook_token(stack.secrets.webhook_token_key, "goapi", task["id"])
        replay = await artist.post(
            f"/webhooks/goapi/{task['id']}?token={token}",
            json={"timestamp": 2_000_000_000, "data": provider_task},
            headers={"x-webhook-secret": stack.secrets.webhook_secret},
        )
        assert replay.status_code == 200
        await asyncio.sleep(2.0)
        assert len(log.events) == seen_before, log.events[seen_before:]
        after = (await artist.get(f"/api/v1/tasks/{task['id']}")).json()
        assert after == before
        images_after = (await artist.get("/api/v1/images", params={"task_id": task["id"]})).json()
        assert images_after == images_before
    finally:
        listener.cancel()
        await asyncio.gather(listener, return_exceptions=True)


async def test_a_correlation_id_follows_the_request_into_every_service(stack, clients):
    artist, _ = clients
    prompt = (await artist.post("/api/v1/prompts", json={"text": "a fig"})).json()
    marker = uuid.uuid4().hex  # the gateway accepts a client's id only if it is a UUID
    accepted = await artist.post(
        f"/api/v1/prompts/{prompt['id']}/imagine", headers={"X-Request-ID": marker}
    )
    assert accepted.status_code == 202
    assert accepted.headers["x-request-id"] == marker
    logs = stack.root / "logs"

    def services_with_marker() -> set[str]:
        found = set()
        for name in ("gateway", "prompts", "images"):
            for line in (logs / f"{name}.log").read_text().splitlines():
                if marker in line:
                    record = json.loads(line)
                    assert record["correlation_id"] == marker
                    assert record["service"] == name
                    found.add(name)
        return found

    for _ in range(50):
        if services_with_marker() == {"gateway", "prompts", "images"}:
            break
        await asyncio.sleep(0.2)
    assert services_with_marker() == {"gateway", "prompts", "images"}


async def test_every_service_exposes_health_and_metrics(stack):
    async with httpx.AsyncClient() as client:
        for name in ("gateway", "prompts", "images", "notifier"):
            base = f"http://127.0.0.1:{getattr(stack.ports, name)}"
            assert (await client.get(f"{base}/livez")).json()["status"] == "ok"
            ready = await client.get(f"{base}/readyz")
            assert ready.status_code == 200, ready.text
            assert set(ready.json()["checks"].values()) == {"ok"}
            metrics = (await client.get(f"{base}/metrics")).text
            assert "imagetron_http_requests_total" in metrics, name
        images_metrics = (await client.get(f"http://127.0.0.1:{stack.ports.images}/metrics")).text
        assert "faststream_received_messages_total" in images_metrics
        gateway_metrics = (await client.get(f"http://127.0.0.1:{stack.ports.gateway}/metrics")).text
        assert 'route="/api/v1/prompts"' in gateway_metrics
