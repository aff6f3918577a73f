"""The webhook boundary: nothing crosses it without the shared secret and the task's own
token, and nothing accepted is answered 2xx before it is stored."""

from __future__ import annotations

import hashlib
import json
import uuid

from imagetron_platform.webhook_tokens import webhook_token

BODY = {"timestamp": 1700000000, "data": {"task_id": "p-1", "status": "completed"}}


def _url(gateway, task_id, token=None):
    token = token or webhook_token("token-key", "goapi", task_id)
    return f"/webhooks/goapi/{task_id}?token={token}"


async def test_verified_callback_is_stored_with_a_body_hash_as_dedupe_id(gateway):
    task_id = uuid.uuid4()
    raw = json.dumps(BODY).encode()
    response = await gateway.client.post(
        _url(gateway, task_id), content=raw, headers={"x-webhook-secret": "s3cret"}
    )
    assert response.status_code == 200
    assert response.json() == {"status": "accepted"}
    [(callback, dedupe_id)] = gateway.callbacks.accepted
    assert callback.task_id == task_id
    assert callback.provider == "goapi"
    assert callback.body == BODY
    assert dedupe_id == "goapi:" + hashlib.sha256(raw).hexdigest()


async def test_wrong_or_missing_secret_is_401_and_nothing_is_stored(gateway):
    task_id = uuid.uuid4()
    for headers in (
        {},
        {"x-webhook-secret": "wrong"},
        {"x-webhook-secret": ""},
        {"x-webhook-secret": "s3cret "},
    ):
        response = await gateway.client.post(_url(gateway, task_id), json=BODY, headers=headers)
        assert response.status_code == 401, headers
        assert response.headers["content-type"] == "application/problem+json"
    assert gateway.callbacks.accepted == []


async def test_a_token_for_another_task_or_provider_is_401(gateway):
    task_id, other = uuid.uuid4(), uuid.uuid4()
    stolen = webhook_token("token-key", "goapi", other)
    foreign = webhook_token("token-key", "replicate", task_id)
    forged = webhook_token("guessed-key", "goapi", task_id)
    for token in (stolen, foreign, forged, "x"):
        response = await gateway.client.post(
            _url(gateway, task_id, token), json=BODY, headers={"x-webhook-secret": "s3cret"}
        )
        assert response.status_code == 401, token
    missing = await gateway.client.post(
        f"/webhooks/goapi/{task_id}", json=BODY, headers={"x-webhook-secret": "s3cret"}
    )
    assert missing.status_code == 422
    assert gateway.callbacks.accepted == []


async def test_malformed_bodies_are_clear_422s(gateway):
    task_id = uuid.uuid4()
    headers = {"x-webhook-secret": "s3cret"}
    for content, needle in (
        (b"not json", "not JSON"),
        (b"[1, 2]", "JSON object"),
        (b"{" + b" " * 5000 + b"}", "exceeds"),
    ):
        response = await gateway.client.post(
            _url(gateway, task_id), content=content, headers=headers
        )
        assert response.status_code == 422
        assert needle in response.json()["detail"]
    assert gateway.callbacks.accepted == []


async def test_storage_down_is_503_so_the_provider_retries(gateway):
    gateway.callbacks.fail = True
    response = await gateway.client.post(
        _url(gateway, uuid.uuid4()), json=BODY, headers={"x-webhook-secret": "s3cret"}
    )
    assert response.status_code == 503
    assert "retry" in response.json()["detail"]
