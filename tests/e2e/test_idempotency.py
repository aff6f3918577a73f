"""Idempotency-Key through the running stack: a retried create or imagine is answered as
the first time and done once, by any gateway replica (the keys live in PostgreSQL); another
user's same key creates their own."""

from __future__ import annotations

import uuid

import httpx
import pytest
from sqlalchemy import delete
from sqlalchemy.ext.asyncio import create_async_engine

from imagetron.testing import gateway_replica_settings, serving
from imagetron_gateway.adapters.tables import idempotency_keys
from imagetron_gateway.bootstrap import create_app

pytestmark = pytest.mark.e2e


async def test_a_retried_create_and_imagine_happen_once_on_any_replica(stack, clients):
    artist, stranger = clients
    key = {"Idempotency-Key": f"create-{uuid.uuid4()}"}
    body = {"text": "a lighthouse in fog, long exposure"}
    first = await artist.post("/api/v1/prompts", json=body, headers=key)
    assert first.status_code == 201, first.text
    async with (
        serving(create_app(gateway_replica_settings(stack))) as other_url,
        httpx.AsyncClient(base_url=other_url, headers=artist.headers, timeout=30) as other,
    ):
        again = await other.post("/api/v1/prompts", json=body, headers=key)
    assert (again.status_code, again.json()) == (201, first.json())
    mine = (await artist.get("/api/v1/prompts", params={"q": "lighthouse in fog"})).json()
    assert [p["id"] for p in mine["items"]] == [first.json()["id"]]
    assert (
        await artist.post("/api/v1/prompts", json={"text": "x"}, headers=key)
    ).status_code == 422

    theirs = await stranger.post("/api/v1/prompts", json=body, headers=key)
    assert theirs.status_code == 201
    assert theirs.json()["id"] != first.json()["id"]

    imagine_key = {"Idempotency-Key": f"imagine-{uuid.uuid4()}"}
    url = f"/api/v1/prompts/{first.json()['id']}/imagine"
    task = await artist.post(url, headers=imagine_key)
    assert task.status_code == 202, task.text
    assert (await artist.post(url, headers=imagine_key)).json() == task.json()
    tasks = (await artist.get("/api/v1/tasks", params={"prompt_id": first.json()["id"]})).json()
    assert [t["id"] for t in tasks["items"]] == [task.json()["id"]]


async def test_an_imagine_sent_again_answers_its_task_after_its_prompt_was_archived(stack, clients):
    """The first imagine created its task but its answer was lost, and the prompt was
    archived since: the retry answers that task, not 409; a new imagine is still a 409."""
    artist, _ = clients
    prompt = (await artist.post("/api/v1/prompts", json={"text": "a heron at dawn"})).json()
    url = f"/api/v1/prompts/{prompt['id']}/imagine"
    key = f"imagine-{uuid.uuid4()}"
    task = await artist.post(url, headers={"Idempotency-Key": key})
    assert task.status_code == 202, task.text
    status = f"/api/v1/prompts/{prompt['id']}/status"
    assert (await artist.put(status, json={"status": "archived"})).status_code == 200
    # Its answer lost (a 504): the gateway gives the key back, so the retry is sent again.
    engine = create_async_engine(stack.infra.postgres.dsn)
    try:
        async with engine.begin() as conn:
            await conn.execute(delete(idempotency_keys).where(idempotency_keys.c.key == key))
    finally:
        await engine.dispose()

    again = await artist.post(url, headers={"Idempotency-Key": key})

    assert (again.status_code, again.json()["id"]) == (202, task.json()["id"]), again.text
    another = await artist.post(url, headers={"Idempotency-Key": f"imagine-{uuid.uuid4()}"})
    assert another.status_code == 409, another.text
