"""What the studio needs from the public API, black-box against the embedded stack:
browser sessions (cookie, CSRF, event stream, sign-out), thumbnails served with caching
headers, in-progress previews from our own origin, and resuming the event stream by URL."""

from __future__ import annotations

import asyncio
import io

import httpx
import pytest
from httpx_sse import aconnect_sse
from PIL import Image

from imagetron.testing import EventLog

pytestmark = [pytest.mark.e2e]


async def _completed_grid(artist: httpx.AsyncClient) -> tuple[dict, list[dict]]:
    prompt = await artist.post("/api/v1/prompts", json={"text": "a quince on oak, dusk"})
    assert prompt.status_code == 201, prompt.text
    task = (await artist.post(f"/api/v1/prompts/{prompt.json()['id']}/imagine", json={})).json()
    for _ in range(300):
        images = (await artist.get("/api/v1/images", params={"task_id": task["id"]})).json()
        if len([i for i in images["items"] if i["is_persisted"]]) == 5:
            done = (await artist.get(f"/api/v1/tasks/{task['id']}")).json()
            return done, images["items"]
        await asyncio.sleep(0.1)
    raise AssertionError("the grid was not stored")


async def test_a_browser_session_reads_writes_with_csrf_streams_and_signs_out(stack, clients):
    artist, _ = clients
    key = artist.headers["Authorization"].removeprefix("Bearer ")
    async with httpx.AsyncClient(base_url=stack.gateway_url, timeout=30) as browser:
        signed_in = await browser.post("/api/v1/session", json={"api_key": key})
        assert signed_in.status_code == 201, signed_in.text
        csrf = signed_in.json()["csrf_token"]
        me = (await browser.get("/api/v1/me")).json()
        assert me["id"] == signed_in.json()["user"]["id"]

        forged = await browser.post("/api/v1/prompts", json={"text": "a forged pear"})
        assert forged.status_code == 401
        created = await browser.post(
            "/api/v1/prompts", json={"text": "a pear"}, headers={"X-CSRF-Token": csrf}
        )
        assert created.status_code == 201, created.text

        async with aconnect_sse(browser, "GET", "/api/v1/events") as source:
            assert source.response.status_code == 200
            await artist.put(
                f"/api/v1/prompts/{created.json()['id']}/status", json={"status": "approved"}
            )
            async for sse in source.aiter_sse():
                if sse.event == "prompt.updated":
                    break

        out = await browser.delete("/api/v1/session", headers={"X-CSRF-Token": csrf})
        assert out.status_code == 204
        assert (await browser.get("/api/v1/me")).status_code == 401
        assert (await browser.get("/api/v1/events")).status_code == 401


async def test_thumbnails_are_small_cached_webp_of_stored_images(clients):
    artist, stranger = clients
    task, images = await _completed_grid(artist)
    for image in images:
        thumb = await artist.get(f"/api/v1/images/{image['id']}/thumbnail")
        assert thumb.status_code == 200, thumb.text
        assert thumb.headers["content-type"] == "image/webp"
        assert "immutable" in thumb.headers["cache-control"]
        with Image.open(io.BytesIO(thumb.content)) as small:
            assert max(small.size) <= 400
            assert small.size[0] * image["height"] == pytest.approx(
                small.size[1] * image["width"], rel=0.02
            )
        assert len(thumb.content) < image["bytes"]
        again = await artist.get(
            f"/api/v1/images/{image['id']}/thumbnail",
            headers={"If-None-Match": thumb.headers["etag"]},
        )
        assert again.status_code == 304
        assert again.content == b""
        assert (await stranger.get(f"/api/v1/images/{image['id']}/thumbnail")).status_code == 404

    # The sandbox shows previews while it renders; the last stays after completion.
    preview = await artist.get(f"/api/v1/tasks/{task['id']}/preview", params={"progress": 70})
    assert preview.status_code == 200, preview.text
    assert preview.headers["content-type"] == "image/webp"
    assert (await stranger.get(f"/api/v1/tasks/{task['id']}/preview")).status_code == 404


async def test_a_new_event_stream_resumes_after_the_id_in_its_url(clients):
    artist, _ = clients
    prompt = (await artist.post("/api/v1/prompts", json={"text": "a plum"})).json()
    log = EventLog()
    async with aconnect_sse(artist, "GET", "/api/v1/events", timeout=None) as source:
        await artist.put(f"/api/v1/prompts/{prompt['id']}/status", json={"status": "rejected"})
        async for sse in source.aiter_sse():
            if sse.event == "prompt.updated":
                last = int(sse.id)
                break
    # Events happen while nobody listens ...
    for status in ("approved", "archived"):
        await artist.put(f"/api/v1/prompts/{prompt['id']}/status", json={"status": status})
    # ... and a new stream that names the last id it saw gets exactly those.
    async with aconnect_sse(
        artist, "GET", "/api/v1/events", params={"last_event_id": str(last)}, timeout=None
    ) as source:
        async for sse in source.aiter_sse():
            if sse.event == "prompt.updated":
                log.events.append((int(sse.id), sse.event, {}))
                if len(log.events) == 2:
                    break
    assert [seq for seq, _, _ in log.events] == sorted(seq for seq, _, _ in log.events)
    assert all(seq > last for seq, _, _ in log.events)
