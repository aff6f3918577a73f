"""Publication, black-box over HTTP and SSE against the embedded stack: a completed upscale
goes to `uploaded` at the sandbox's stock agency with a valid CSV, every step on the
artist's event stream, metadata suggested by the language model, nothing visible to anyone
else; then the portal's steps as a browser extension reports them."""

from __future__ import annotations

import asyncio
import time

import httpx
import pytest

from imagetron.stack import EmbeddedStack
from imagetron.testing import EventLog

pytestmark = [pytest.mark.e2e]

STEPS = [
    "publication.created",
    "publication.ready",
    "publication.queued",
    "publication.uploading",
    "publication.uploaded",
    "publication.csv_uploaded",
]


async def completed(client: httpx.AsyncClient, task_id: str) -> dict:
    for _ in range(300):
        task = (await client.get(f"/api/v1/tasks/{task_id}")).json()
        if task["status"] == "completed":
            return task
        await asyncio.sleep(0.1)
    raise AssertionError(f"task {task_id} did not complete")


async def stored_upscale(artist: httpx.AsyncClient) -> str:
    prompt = await artist.post(
        "/api/v1/prompts",
        json={"text": "a ripe pear on a linen cloth, morning light", "title": "Ripe pear"},
    )
    assert prompt.status_code == 201, prompt.text
    grid = await artist.post(f"/api/v1/prompts/{prompt.json()['id']}/imagine", json={})
    assert grid.status_code == 202, grid.text
    await completed(artist, grid.json()["id"])
    upscale = await artist.post(f"/api/v1/tasks/{grid.json()['id']}/upscale", json={"index": 2})
    assert upscale.status_code == 202, upscale.text
    await completed(artist, upscale.json()["id"])
    for _ in range(300):
        page = await artist.get("/api/v1/images", params={"task_id": upscale.json()["id"]})
        items = [i for i in page.json()["items"] if i["is_persisted"]]
        if items:
            return str(items[0]["id"])
        await asyncio.sleep(0.1)
    raise AssertionError("the upscale was not stored")


async def test_a_completed_upscale_reaches_the_agency_with_its_csv(
    stack: EmbeddedStack, clients, events: EventLog
):
    artist, stranger = clients
    image_id = await stored_upscale(artist)
    started = time.monotonic()

    # The publisher learns of stored images from the event stream: ready within moments.
    for _ in range(100):
        readiness = await artist.get(
            "/api/v1/publications/readiness", params={"image_id": image_id}
        )
        if readiness.status_code == 200:
            break
        await asyncio.sleep(0.1)
    assert readiness.status_code == 200, readiness.text
    assert readiness.json()["ready"], readiness.json()
    assert (await stranger.get(
        "/api/v1/publications/readiness", params={"image_id": image_id}
    )).status_code == 404  # fmt: skip

    user = f"artist-{image_id[:8]}"
    account = await artist.put(
        "/api/v1/publications/accounts/adobe_stock",
        json={"username": user, "password": "sandbox"},
    )
    assert account.status_code == 200, account.text
    assert "sandbox" not in account.text.replace("sandbox-", "")  # the password never returns

    created = await artist.post(
        "/api/v1/publications", json={"image_ids": [image_id], "publish_when_ready": True}
    )
    assert created.status_code == 201, created.text
    [item] = created.json()["items"]
    assert item["status"] == "draft"  # the language model's suggestion is on its way
    publication_id = item["id"]

    def mine(events_so_far):
        return [
            t
            for _, t, data in events_so_far
            if data.get("publication", {}).get("id") == publication_id
        ]

    await events.wait_for(lambda ev: "publication.csv_uploaded" in mine(ev), timeout=60)
    assert time.monotonic() - started < 60
    seen = [t for t in mine(events.events) if t in STEPS]
    assert seen == STEPS, mine(events.events)

    done = (await artist.get(f"/api/v1/publications/{publication_id}")).json()
    assert done["status"] == "uploaded"
    assert done["metadata"]["generative_ai"] is True
    assert done["metadata"]["keywords"]
    assert 1 <= done["metadata"]["category"] <= 21
    assert done["file"]["name"] == done["remote_name"]

    sandbox = f"http://127.0.0.1:{stack.ports.sandbox}"
    async with httpx.AsyncClient(base_url=sandbox) as agency:
        files = {
            f["name"]: f["bytes"]
            for f in (await agency.get(f"/sandbox/agency/files/{user}")).json()
        }
        [report] = (await agency.get("/sandbox/agency/reports", params={"user": user})).json()
    assert report["accepted"], report["problems"]
    assert set(files) == {done["remote_name"], report["file"]}
    assert files[done["remote_name"]] == done["file"]["bytes"]
    csv = await artist.get(f"/api/v1/publications/batches/{done['batch_id']}/csv")
    assert csv.status_code == 200
    assert csv.text.startswith("Filename,Title,Keywords,Category,Releases\n")

    # The portal's steps, as a browser extension reports them; nobody else can.
    listed = await artist.get(
        "/api/v1/publications", params={"status": "uploaded", "remote_name": done["remote_name"]}
    )
    assert [p["id"] for p in listed.json()["items"]] == [publication_id]
    assert (await stranger.get(f"/api/v1/publications/{publication_id}")).status_code == 404
    refused = await stranger.post(
        f"/api/v1/publications/{publication_id}/portal", json={"status": "submitted"}
    )
    assert refused.status_code == 404
    for status in ("submitted", "accepted"):
        step = await artist.post(
            f"/api/v1/publications/{publication_id}/portal", json={"status": status}
        )
        assert (step.status_code, step.json()["status"]) == (200, status), step.text
    out_of_order = await artist.post(
        f"/api/v1/publications/{publication_id}/portal", json={"status": "submitted"}
    )
    assert out_of_order.status_code == 409
