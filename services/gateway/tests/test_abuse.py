"""Bad input from an attacker or a careless client: every class is a 4xx problem document,
answered before anything is called, written or paid, and never a 500."""

from __future__ import annotations

import uuid

import pytest

from imagetron_platform.webhook_tokens import webhook_token

WEBHOOK_ROUTES = ("goapi", "midjourney_proxy", "replicate")
JSON = {"content-type": "application/json"}
NUL = "before\x00after"

#: Every text field a client sends, as (method, path, body or query).
TEXT_FIELDS = [
    ("POST", "/api/v1/prompts", {"text": NUL}),
    ("POST", "/api/v1/prompts", {"text": "a pear", "title": NUL}),
    ("PATCH", "/api/v1/prompts/{id}", {"text": NUL}),
    ("PATCH", "/api/v1/prompts/{id}", {"title": NUL}),
    ("POST", "/api/v1/prompts/generate", {"subject": NUL}),
    ("POST", "/api/v1/prompts/generate", {"subject": "pears", "style": NUL}),
    ("POST", "/api/v1/chats", {"brief": NUL}),
    ("POST", "/api/v1/chats/{id}/messages", {"text": NUL}),
    ("POST", "/api/v1/users", {"name": NUL}),
    ("GET", "/api/v1/prompts", {"q": NUL}),
]


def _problem(response, status):
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == "application/problem+json"
    assert response.json()["status"] == status
    return response.json()


@pytest.mark.parametrize(("method", "path", "data"), TEXT_FIELDS)
async def test_a_nul_character_in_any_text_field_is_refused_before_any_call(
    gateway, method, path, data
):
    url = path.format(id=uuid.uuid4())
    if method == "GET":
        response = await gateway.client.get(url, params=data, headers=gateway.auth("admin"))
    else:
        response = await gateway.client.request(
            method, url, json=data, headers=gateway.auth("admin")
        )
    _problem(response, 422)
    assert gateway.services.calls == []


@pytest.mark.parametrize("provider", WEBHOOK_ROUTES)
@pytest.mark.parametrize("token", ["%C3%A9", "%E2%82%AC" * 20, "%00", "%FF", ""])
async def test_a_malformed_webhook_token_is_a_plain_401(gateway, provider, token):
    response = await gateway.client.post(
        f"/webhooks/{provider}/{uuid.uuid4()}?token={token}&secret=s3cret",
        json={"data": {}},
        headers={"x-webhook-secret": "s3cret"},
    )
    _problem(response, 401)
    assert gateway.callbacks.accepted == []


@pytest.mark.parametrize("provider", WEBHOOK_ROUTES)
async def test_a_webhook_that_is_not_json_is_refused_unread(gateway, provider):
    task_id = uuid.uuid4()
    token = webhook_token("token-key", provider, task_id)
    for content_type in ("text/plain", "application/x-www-form-urlencoded", None):
        headers = {"x-webhook-secret": "s3cret"}
        if content_type:
            headers["content-type"] = content_type
        response = await gateway.client.post(
            f"/webhooks/{provider}/{task_id}?token={token}&secret=s3cret",
            content=b'{"data": {}}',
            headers=headers,
        )
        _problem(response, 415)
    assert gateway.callbacks.accepted == []


@pytest.mark.parametrize(
    "token", ["é", "\u20ac" * 50, "a.b", ".", "x" * 5000, "eyJzdWIiOiJ4In0.\u00e9"]
)
async def test_a_malformed_events_token_is_a_plain_401(gateway, token):
    response = await gateway.client.get("/api/v1/events", params={"token": token})
    _problem(response, 401)


async def test_bodies_that_are_not_utf8_or_nested_too_deep_are_422(gateway):
    for content in (
        b'{"text": "\xff\xfe"}',
        b'{"text": ' + b"[" * 100_00 + b"]" * 100_00 + b"}",
        b'{"text": "a"',
    ):
        response = await gateway.client.post(
            "/api/v1/prompts", content=content, headers={**gateway.auth("ada"), **JSON}
        )
        _problem(response, 422)
    assert gateway.services.calls == []


async def test_a_huge_last_event_id_is_refused_before_the_stream_opens(gateway):
    for last_id in ("9" * 20, "1" * 10_000, "-1", "1e9"):
        response = await gateway.client.get(
            "/api/v1/events", headers={**gateway.auth("ada"), "Last-Event-ID": last_id}
        )
        _problem(response, 422)


async def test_a_wrong_method_lists_every_method_of_the_path(gateway):
    cases = {
        ("PUT", "/api/v1/prompts"): "GET, POST",
        ("OPTIONS", "/api/v1/prompts"): "GET, POST",
        ("PUT", f"/api/v1/prompts/{uuid.uuid4()}"): "DELETE, GET, PATCH",
        ("GET", "/api/v1/prompts/generate"): "POST",
        ("DELETE", "/api/v1/prompts/generate"): "POST",
        ("PATCH", "/api/v1/prompts/generate"): "POST",
    }
    for (method, path), allow in cases.items():
        response = await gateway.client.request(method, path, headers=gateway.auth("ada"))
        _problem(response, 405)
        assert response.headers["allow"] == allow, (method, path)
    assert gateway.services.calls == []


async def test_a_path_without_an_id_where_one_belongs_is_not_found(gateway):
    for path in ("/api/v1/prompts/generat", "/api/v1/tasks/42", "/api/v1/images/%00"):
        _problem(await gateway.client.get(path, headers=gateway.auth("ada")), 404)


async def test_no_body_is_read_before_the_caller_is_known(gateway):
    sent = []

    async def body():
        for _ in range(100):
            sent.append(1)
            yield b" " * 1000

    response = await gateway.client.post("/api/v1/prompts", content=body(), headers=JSON)
    _problem(response, 401)
    assert len(sent) <= 1  # the transport's first chunk at most; nothing was parsed


async def test_bodies_past_the_limit_are_413_while_streaming_and_by_their_length(gateway):
    limit = gateway.settings.max_body_bytes

    async def endless():
        while True:
            yield b" " * 8192

    streamed = await gateway.client.post(
        "/api/v1/prompts", content=endless(), headers={**gateway.auth("ada"), **JSON}
    )
    _problem(streamed, 413)
    declared = await gateway.client.post(
        "/api/v1/prompts",
        content=b" " * (limit + 1),
        headers={**gateway.auth("ada"), **JSON},
    )
    _problem(declared, 413)
    assert gateway.services.calls == []


async def test_anonymous_requests_are_limited_per_address(gateway):
    limit = gateway.settings.rate_limit_per_address
    for _ in range(limit):
        response = await gateway.client.get("/api/v1/me", headers={"Authorization": "Bearer x"})
        _problem(response, 401)
    refused = await gateway.client.get("/api/v1/me", headers={"Authorization": "Bearer x"})
    _problem(refused, 429)
    assert int(refused.headers["retry-after"]) >= 1
    assert refused.headers["ratelimit-policy"] == (
        f'"per-address";q={limit};w={gateway.settings.rate_limit_window_seconds}'
    )
    assert refused.headers["ratelimit"].startswith('"per-address";r=0;t=')
    # A valid key is limited on its own account, not the address's.
    assert (await gateway.client.get("/api/v1/me", headers=gateway.auth("ada"))).status_code == 200


async def test_each_key_has_its_own_request_limit(gateway):
    limit = gateway.settings.rate_limit_per_key
    for _ in range(limit):
        response = await gateway.client.get("/api/v1/me", headers=gateway.auth("ada"))
        assert response.status_code == 200
        assert response.headers["ratelimit"].startswith('"per-key";r=')
    refused = await gateway.client.get("/api/v1/me", headers=gateway.auth("ada"))
    _problem(refused, 429)
    assert int(refused.headers["retry-after"]) >= 1
    assert (
        await gateway.client.get("/api/v1/me", headers=gateway.auth("admin"))
    ).status_code == 200


async def test_every_answer_carries_the_security_headers(gateway):
    for response in (
        await gateway.client.get("/api/v1/me", headers=gateway.auth("ada")),
        await gateway.client.get("/api/v1/me"),
        await gateway.client.get("/docs"),
        await gateway.client.get("/nowhere"),
    ):
        assert response.headers["x-content-type-options"] == "nosniff"
        assert response.headers["referrer-policy"] == "no-referrer"
        assert response.headers["cache-control"] == "no-store"
        policy = response.headers["content-security-policy"]
        assert "default-src 'self'" in policy
        assert "frame-ancestors 'none'" in policy


async def test_docs_are_served_from_our_origin_without_inline_scripts(gateway):
    page = await gateway.client.get("/docs")
    assert page.status_code == 200
    assert "cdn" not in page.text.lower()
    assert "<script>" not in page.text  # every script has a src: the page policy allows it
    for asset in ("swagger-ui-bundle.js", "swagger-ui.css", "init.js", "LICENSE"):
        response = await gateway.client.get(f"/docs/assets/{asset}")
        assert response.status_code == 200, asset
        assert response.content, asset
