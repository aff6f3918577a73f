"""The prompt workshop, black-box: HTTP and SSE against the embedded stack, with the
sandbox as the language model.

chat → subjects → refine → prompts (with stock-ready titles) → retitle → approve → imagine
→ the prompt shows `generated` with the right counters; plus the documented errors of a
language model that refuses, the 409 on deleting a prompt that is generating, and that
another user sees none of it."""

from __future__ import annotations

import pytest

from imagetron.testing import EventLog

pytestmark = [pytest.mark.e2e]


def _prompt_state(events: EventLog, prompt_id: str) -> list[dict]:
    return [e["prompt"] for e in events.of_type("prompt.updated") if e["prompt"]["id"] == prompt_id]


async def test_chat_to_generated_images_over_http_and_sse(clients, events):
    artist, stranger = clients

    started = await artist.post(
        "/api/v1/chats", json={"brief": "autumn still lifes for stock", "count": 3}
    )
    assert started.status_code == 201, started.text
    chat = started.json()
    assert [m["role"] for m in chat["messages"]] == ["user", "assistant"]
    assert len(chat["messages"][1]["subjects"]) == 3
    assert chat["messages"][1]["usage"]["total_tokens"] > 0

    refined = await artist.post(
        f"/api/v1/chats/{chat['id']}/messages", json={"text": "only pears on linen", "count": 2}
    )
    assert refined.status_code == 201, refined.text
    history = (await artist.get(f"/api/v1/chats/{chat['id']}")).json()
    assert [m["position"] for m in history["messages"]] == [0, 1, 2, 3]
    subject = history["messages"][3]["subjects"][0]["text"]

    generated = await artist.post(
        "/api/v1/prompts/generate",
        json={"subject": subject, "count": 2, "aspect_ratio": "1:1", "chat_id": chat["id"]},
    )
    assert generated.status_code == 201, generated.text
    prompts = generated.json()["prompts"]
    assert len(prompts) == 2
    for prompt in prompts:
        assert prompt["text"].endswith("--ar 1:1")
        assert 0 < len(prompt["title"]) <= 70
        assert "," not in prompt["title"]
        assert prompt["chat_id"] == chat["id"]
        assert prompt["findings"] == []
    prompt = prompts[0]

    retitled = await artist.post(f"/api/v1/prompts/{prompt['id']}/retitle")
    assert retitled.status_code == 200, retitled.text
    assert retitled.json()["title"] != prompt["title"]
    approved = await artist.put(
        f"/api/v1/prompts/{prompt['id']}/status", json={"status": "approved"}
    )
    assert approved.json()["status"] == "approved"

    accepted = await artist.post(
        f"/api/v1/prompts/{prompt['id']}/imagine", json={"aspect_ratio": "1:1"}
    )
    assert accepted.status_code == 202, accepted.text

    await events.wait_for(
        lambda _: any(
            p["generation_state"] == "generated" for p in _prompt_state(events, prompt["id"])
        )
    )
    final = (await artist.get(f"/api/v1/prompts/{prompt['id']}")).json()
    assert final["generation_state"] == "generated"
    assert (final["active_tasks"], final["completed_tasks"], final["failed_tasks"]) == (0, 1, 0)
    assert final["status"] == "approved"
    assert final["title"] == retitled.json()["title"]
    states = [p["generation_state"] for p in _prompt_state(events, prompt["id"])]
    assert "generating" in states
    assert states.index("generating") < states.index("generated")

    # The browser was told about every step of the workshop.
    assert [c["chat"]["id"] for c in events.of_type("chat.created")] == [chat["id"]]
    assert [c["chat"]["message_count"] for c in events.of_type("chat.updated")] == [4]
    assert {p["prompt"]["id"] for p in events.of_type("prompt.created")} == {
        p["id"] for p in prompts
    }

    linked = await artist.get("/api/v1/prompts", params={"chat_id": chat["id"]})
    assert {p["id"] for p in linked.json()["items"]} == {p["id"] for p in prompts}
    approved_only = await artist.get(
        "/api/v1/prompts", params={"status": "approved", "chat_id": chat["id"]}
    )
    assert [p["id"] for p in approved_only.json()["items"]] == [prompt["id"]]

    # Someone else sees none of it.
    for path in (f"/api/v1/chats/{chat['id']}", f"/api/v1/prompts/{prompt['id']}"):
        assert (await stranger.get(path)).status_code == 404, path
    assert (await stranger.delete(f"/api/v1/chats/{chat['id']}")).status_code == 404
    assert (await stranger.get("/api/v1/chats")).json()["items"] == []
    theirs = await stranger.get("/api/v1/prompts", params={"chat_id": chat["id"]})
    assert theirs.json()["items"] == []

    # Deleting the chat keeps its prompts, unlinked.
    assert (await artist.delete(f"/api/v1/chats/{chat['id']}")).status_code == 204
    assert (await artist.get(f"/api/v1/chats/{chat['id']}")).status_code == 404
    kept = (await artist.get(f"/api/v1/prompts/{prompt['id']}")).json()
    assert kept["chat_id"] is None
    await events.wait_for(lambda _: events.of_type("chat.deleted"))


async def test_a_refusing_model_is_a_502_naming_it_and_nothing_is_saved(clients):
    artist, _ = clients
    before = (await artist.get("/api/v1/chats")).json()["items"]
    refused = await artist.post(
        "/api/v1/chats", json={"brief": "something forbidden --sandbox-chat-refusal"}
    )
    assert refused.status_code == 502
    assert refused.headers["content-type"].startswith("application/problem+json")
    problem = refused.json()
    assert problem["status"] == 502
    assert "refused" in problem["detail"]
    assert "Nothing was saved" in problem["detail"]
    assert (await artist.get("/api/v1/chats")).json()["items"] == before

    malformed = await artist.post(
        "/api/v1/prompts/generate", json={"subject": "pears --sandbox-chat-malformed"}
    )
    assert malformed.status_code == 502
    assert "malformed" in malformed.json()["detail"]


async def test_a_generating_prompt_cannot_be_deleted(clients, events):
    artist, _ = clients
    # The sandbox keeps this task pending for a while: time to try deleting it.
    created = await artist.post(
        "/api/v1/prompts",
        json={"text": "a quince on slate --sandbox-queue-delay=4000", "title": "Quince"},
    )
    prompt = created.json()
    assert (await artist.post(f"/api/v1/prompts/{prompt['id']}/imagine")).status_code == 202
    await events.wait_for(
        lambda _: any(p["active_tasks"] == 1 for p in _prompt_state(events, prompt["id"]))
    )
    refused = await artist.delete(f"/api/v1/prompts/{prompt['id']}")
    assert refused.status_code == 409, refused.text
    assert "active generation task" in refused.json()["detail"]

    await events.wait_for(
        lambda _: any(
            p["generation_state"] == "generated" for p in _prompt_state(events, prompt["id"])
        )
    )
    assert (await artist.delete(f"/api/v1/prompts/{prompt['id']}")).status_code == 204
    assert (await artist.get(f"/api/v1/prompts/{prompt['id']}")).status_code == 404
    await events.wait_for(
        lambda _: any(e["prompt"]["id"] == prompt["id"] for e in events.of_type("prompt.deleted"))
    )
