from __future__ import annotations

import httpx
import pytest

pytestmark = pytest.mark.integration


async def test_ready_when_database_and_nats_answer(prompts_app):
    transport = httpx.ASGITransport(app=prompts_app)
    async with httpx.AsyncClient(transport=transport, base_url="http://prompts") as client:
        live = await client.get("/livez")
        ready = await client.get("/readyz")
        metrics = await client.get("/metrics")
    assert live.status_code == 200
    assert ready.status_code == 200, ready.text
    assert ready.json()["checks"] == {"database": "ok", "nats": "ok"}
    assert metrics.status_code == 200
