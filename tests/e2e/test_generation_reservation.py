"""A prompt cannot be deleted in the moment after its imagine answered 202: the generation
is reserved on the prompt before the answer, not when the task's `created` event arrives."""

from __future__ import annotations

import pytest

pytestmark = pytest.mark.e2e


async def test_a_prompt_is_not_deleted_right_after_its_imagine_was_accepted(stack, clients):
    artist, _ = clients
    prompt = (await artist.post("/api/v1/prompts", json={"text": "a lighthouse in fog"})).json()
    accepted = await artist.post(f"/api/v1/prompts/{prompt['id']}/imagine", json={})
    assert accepted.status_code == 202, accepted.text
    # No wait: the task's events have not necessarily reached the prompt yet.
    refused = await artist.delete(f"/api/v1/prompts/{prompt['id']}")
    assert refused.status_code == 409, refused.text
    assert "active generation task" in refused.json()["detail"]
    still = await artist.get(f"/api/v1/prompts/{prompt['id']}")
    assert still.status_code == 200
    assert still.json()["active_tasks"] == 1
