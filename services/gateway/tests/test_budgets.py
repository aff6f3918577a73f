"""Daily budgets for what costs money: language-model calls and generations per user."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

from imagetron_contracts import streams
from imagetron_platform.errors import NotFound


def _task(owner_id):
    now = datetime.now(UTC).isoformat()
    return {
        "id": str(uuid.uuid4()),
        "owner_id": str(owner_id),
        "prompt_id": str(uuid.uuid4()),
        "command": "reroll",
        "status": "pending",
        "progress": 0,
        "provider": "goapi",
        "provider_task_id": None,
        "prompt_text": "a pear",
        "aspect_ratio": "1:1",
        "process_mode": "fast",
        "created_at": now,
        "updated_at": now,
    }


async def _usage(gateway, who="ada"):
    response = await gateway.client.get("/api/v1/me/usage", headers=gateway.auth(who))
    assert response.status_code == 200
    return response.json()


async def test_generations_stop_at_the_daily_budget_with_retry_after(gateway):
    ada = gateway.people["ada"]
    gateway.services.answers[streams.RPC_IMAGES_TASKS_REROLL] = _task(ada.id)
    url = f"/api/v1/tasks/{uuid.uuid4()}/reroll"
    for _ in range(gateway.settings.generations_per_day):
        assert (await gateway.client.post(url, headers=gateway.auth("ada"))).status_code == 202
    refused = await gateway.client.post(url, headers=gateway.auth("ada"))
    assert refused.status_code == 429
    assert 1 <= int(refused.headers["retry-after"]) <= 86_400
    assert "GET /api/v1/me/usage" in refused.json()["detail"]
    assert len(gateway.services.calls) == gateway.settings.generations_per_day  # not called
    usage = await _usage(gateway)
    assert usage["generations"] == {"limit": 2, "used": 2, "remaining": 0}
    assert usage["llm_calls"] == {"limit": 5, "used": 0, "remaining": 5}
    # Another user's budget is its own.
    other = await gateway.client.post(url, headers=gateway.auth("admin"))
    assert other.status_code == 202


async def test_a_refused_call_costs_nothing(gateway):
    gateway.services.answers[streams.RPC_PROMPTS_RETITLE] = NotFound("No such prompt.")
    for _ in range(5):
        response = await gateway.client.post(
            f"/api/v1/prompts/{uuid.uuid4()}/retitle", headers=gateway.auth("ada")
        )
        assert response.status_code == 404
    assert (await _usage(gateway))["llm_calls"]["used"] == 0
