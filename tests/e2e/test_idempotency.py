"""Idempotency-Key through the running stack: a retried create or imagine is answered as
the first time and done once, by any gateway replica (the keys live in PostgreSQL); another
user's same key creates their own."""

from __future__ import annotations

import uuid

import httpx
import pytest

from imagetron.testing import gateway_replica_settings, serving
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
