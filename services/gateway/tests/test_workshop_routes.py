"""The prompt workshop's REST edge: what the gateway forwards, with which timeout, and how
it maps the answers (fakes of the services; the contract test covers the document)."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

import pytest

from imagetron_contracts import streams
from imagetron_platform.errors import BadGateway, Conflict, ServiceTimeout

LLM_BACKED = {
    streams.RPC_PROMPTS_CHATS_START,
    streams.RPC_PROMPTS_CHATS_CONTINUE,
    streams.RPC_PROMPTS_GENERATE,
    streams.RPC_PROMPTS_RETITLE,
}


def _now() -> str:
    return datetime.now(UTC).isoformat()


def _chat(owner_id, chat_id=None):
    chat_id = chat_id or uuid.uuid4()
    return {
        "id": str(chat_id),
        "owner_id": str(owner_id),
        "title": "pears",
        "message_count": 2,
        "created_at": _now(),
        "updated_at": _now(),
        "messages": [
            {
                "id": str(uuid.uuid4()),
                "chat_id": str(chat_id),
                "position": 0,
                "role": "user",
                "content": "pears",
                "subjects": [],
                "usage": None,
                "created_at": _now(),
            },
            {
                "id": str(uuid.uuid4()),
                "chat_id": str(chat_id),
                "position": 1,
                "role": "assistant",
                "content": "Here.",
                "subjects": [{"text": "a pear", "findings": []}],
                "usage": {
                    "model": "m",
                    "prompt_tokens": 1,
                    "completion_tokens": 2,
                    "total_tokens": 3,
                    "attempts": 1,
                },
                "created_at": _now(),
            },
        ],
    }


def _summary(owner_id):
    chat = _chat(owner_id)
    del chat["messages"]
    return chat


async def test_llm_backed_calls_wait_longer_and_the_others_do_not(gateway, make_prompt):
    ada = gateway.people["ada"]
    answers = gateway.services.answers
    chat_id, prompt_id = uuid.uuid4(), uuid.uuid4()
    answers[streams.RPC_PROMPTS_CHATS_START] = _chat(ada.id)
    answers[streams.RPC_PROMPTS_CHATS_CONTINUE] = _chat(ada.id, chat_id)
    answers[streams.RPC_PROMPTS_CHATS_GET] = _chat(ada.id, chat_id)
    answers[streams.RPC_PROMPTS_CHATS_LIST] = {"items": [_summary(ada.id)], "next_cursor": None}
    answers[streams.RPC_PROMPTS_CHATS_DELETE] = _summary(ada.id)
    answers[streams.RPC_PROMPTS_GENERATE] = {
        "prompts": [make_prompt(ada.id)],
        "usage": {
            "model": "m",
            "prompt_tokens": 1,
            "completion_tokens": 2,
            "total_tokens": 3,
            "attempts": 1,
        },
    }
    answers[streams.RPC_PROMPTS_RETITLE] = make_prompt(ada.id)
    answers[streams.RPC_PROMPTS_UPDATE] = make_prompt(ada.id)
    answers[streams.RPC_PROMPTS_SET_STATUS] = make_prompt(ada.id, status="approved")
    answers[streams.RPC_PROMPTS_DELETE] = make_prompt(ada.id)
    answers[streams.RPC_PROMPTS_LIST] = {"items": [], "next_cursor": None}
    auth = gateway.auth("ada")
    client = gateway.client
    calls = [
        (await client.post("/api/v1/chats", json={"brief": "pears"}, headers=auth), 201),
        (
            await client.post(
                f"/api/v1/chats/{chat_id}/messages", json={"text": "more"}, headers=auth
            ),
            201,
        ),
        (await client.get(f"/api/v1/chats/{chat_id}", headers=auth), 200),
        (await client.get("/api/v1/chats", headers=auth), 200),
        (await client.delete(f"/api/v1/chats/{chat_id}", headers=auth), 204),
        (
            await client.post("/api/v1/prompts/generate", json={"subject": "a pear"}, headers=auth),
            201,
        ),
        (await client.post(f"/api/v1/prompts/{prompt_id}/retitle", headers=auth), 200),
        (
            await client.patch(f"/api/v1/prompts/{prompt_id}", json={"text": "x"}, headers=auth),
            200,
        ),
        (
            await client.put(
                f"/api/v1/prompts/{prompt_id}/status", json={"status": "approved"}, headers=auth
            ),
            200,
        ),
        (await client.delete(f"/api/v1/prompts/{prompt_id}", headers=auth), 204),
        (await client.get("/api/v1/prompts", headers=auth), 200),
    ]
    for response, status in calls:
        assert response.status_code == status, (response.request.url, response.text)
    assert all(request.owner_id == ada.id for _, request in gateway.services.calls)
    llm_timeout = gateway.settings.llm_rpc_timeout_seconds
    assert llm_timeout > gateway.settings.rpc_timeout_seconds
    for subject, timeout in gateway.services.timeouts.items():
        assert timeout == (llm_timeout if subject in LLM_BACKED else None), subject
    assert set(gateway.services.timeouts) >= LLM_BACKED
    deleted = [r for r, s in calls if s == 204]
    assert all(r.content == b"" for r in deleted)


async def test_list_forwards_the_filters(gateway):
    ada = gateway.people["ada"]
    gateway.services.answers[streams.RPC_PROMPTS_LIST] = {"items": [], "next_cursor": None}
    chat_id = uuid.uuid4()
    response = await gateway.client.get(
        "/api/v1/prompts",
        params={"status": "approved", "chat_id": str(chat_id), "q": "pear", "limit": 5},
        headers=gateway.auth("ada"),
    )
    assert response.status_code == 200
    [(_, query)] = gateway.services.calls
    assert (query.owner_id, query.status.value, query.chat_id, query.q, query.limit) == (
        ada.id,
        "approved",
        chat_id,
        "pear",
        5,
    )
    bad = await gateway.client.get(
        "/api/v1/prompts", params={"status": "finished"}, headers=gateway.auth("ada")
    )
    assert bad.status_code == 422


@pytest.mark.parametrize(
    ("body", "text", "title", "clear"),
    [
        ({"text": "new text"}, "new text", None, False),
        ({"title": "New"}, None, "New", False),
        ({"title": None}, None, None, True),
        ({"text": "t", "title": None}, "t", None, True),
    ],
)
async def test_patch_is_a_merge_patch(gateway, make_prompt, body, text, title, clear):
    gateway.services.answers[streams.RPC_PROMPTS_UPDATE] = make_prompt(gateway.people["ada"].id)
    response = await gateway.client.patch(
        f"/api/v1/prompts/{uuid.uuid4()}", json=body, headers=gateway.auth("ada")
    )
    assert response.status_code == 200
    [(_, command)] = gateway.services.calls
    assert (command.text, command.title, command.clear_title) == (text, title, clear)


@pytest.mark.parametrize("body", [{}, {"text": None}, {"status": "approved"}])
async def test_patch_without_a_change_is_422_and_forwards_nothing(gateway, body):
    response = await gateway.client.patch(
        f"/api/v1/prompts/{uuid.uuid4()}", json=body, headers=gateway.auth("ada")
    )
    assert response.status_code == 422
    assert response.headers["content-type"] == "application/problem+json"
    assert gateway.services.calls == []


@pytest.mark.parametrize(
    ("problem", "status"),
    [
        (BadGateway("The language model gave no usable answer: it refused to answer."), 502),
        (ServiceTimeout("The language model gave no usable answer: it did not answer."), 504),
    ],
)
async def test_llm_failures_reach_the_client_as_problems_naming_the_cause(gateway, problem, status):
    gateway.services.answers[streams.RPC_PROMPTS_CHATS_START] = problem
    response = await gateway.client.post(
        "/api/v1/chats", json={"brief": "pears"}, headers=gateway.auth("ada")
    )
    assert response.status_code == status
    assert response.headers["content-type"] == "application/problem+json"
    assert response.json()["detail"] == problem.detail


async def test_deleting_a_prompt_with_active_tasks_is_409(gateway):
    gateway.services.answers[streams.RPC_PROMPTS_DELETE] = Conflict("It has 1 active task.")
    response = await gateway.client.delete(
        f"/api/v1/prompts/{uuid.uuid4()}", headers=gateway.auth("ada")
    )
    assert response.status_code == 409


@pytest.mark.parametrize(
    ("path", "body"),
    [
        ("/api/v1/chats", {"brief": ""}),
        ("/api/v1/chats", {"brief": "x", "count": 21}),
        ("/api/v1/prompts/generate", {"subject": "a pear", "count": 11}),
        ("/api/v1/prompts/generate", {"subject": "a pear", "aspect_ratio": "wide"}),
        ("/api/v1/prompts/generate", {"subject": "a pear", "owner_id": str(uuid.uuid4())}),
    ],
)
async def test_invalid_bodies_are_422_before_any_call(gateway, path, body):
    response = await gateway.client.post(path, json=body, headers=gateway.auth("ada"))
    assert response.status_code == 422
    assert gateway.services.calls == []
