"""Authentication, ownership forwarding and error mapping at the REST edge."""

from __future__ import annotations

import time
import uuid

from imagetron_contracts import streams
from imagetron_platform.errors import Conflict, NotFound, ServiceTimeout, ServiceUnavailable
from imagetron_platform.events_tokens import issue_events_token, verify_events_token


async def test_requests_without_a_valid_key_are_401_problems(gateway):
    for headers in (
        {},
        {"Authorization": "Bearer itk_nope"},
        {"Authorization": "Basic abc"},
        {"Authorization": "Bearer"},
    ):
        response = await gateway.client.get("/api/v1/prompts", headers=headers)
        assert response.status_code == 401, headers
        assert response.headers["content-type"] == "application/problem+json"
        assert response.json()["status"] == 401
    assert gateway.services.calls == []


async def test_the_owner_comes_from_the_key_not_from_the_request(gateway, make_prompt):
    ada = gateway.people["ada"]
    gateway.services.answers[streams.RPC_PROMPTS_CREATE] = make_prompt(ada.id)
    response = await gateway.client.post(
        "/api/v1/prompts",
        json={"text": "a pear"},
        headers=gateway.auth("ada"),
    )
    assert response.status_code == 201
    [(subject, command)] = gateway.services.calls
    assert subject == streams.RPC_PROMPTS_CREATE
    assert command.owner_id == ada.id


async def test_unknown_fields_are_422_with_field_errors_and_bad_ids_not_found(gateway):
    extra = await gateway.client.post(
        "/api/v1/prompts",
        json={"text": "x", "owner_id": str(uuid.uuid4())},
        headers=gateway.auth("ada"),
    )
    assert extra.status_code == 422
    assert extra.json()["errors"]
    bad_id = await gateway.client.get("/api/v1/tasks/not-a-uuid", headers=gateway.auth("ada"))
    assert bad_id.status_code == 404
    assert bad_id.headers["content-type"] == "application/problem+json"
    assert gateway.services.calls == []


async def test_service_problems_keep_their_status(gateway):
    cases = [
        (NotFound("No such task."), 404),
        (Conflict("Archived."), 409),
        (ServiceUnavailable("down"), 503),
        (ServiceTimeout("slow"), 504),
    ]
    for problem, status in cases:
        gateway.services.answers[streams.RPC_IMAGES_TASKS_GET] = problem
        response = await gateway.client.get(
            f"/api/v1/tasks/{uuid.uuid4()}", headers=gateway.auth("ada")
        )
        assert response.status_code == status
        assert response.json()["detail"] == problem.detail


async def test_imagine_asks_prompts_first_and_stops_on_its_refusal(gateway):
    gateway.services.answers[streams.RPC_PROMPTS_PREPARE_GENERATION] = Conflict(
        "The prompt is archived; restore it before generating."
    )
    response = await gateway.client.post(
        f"/api/v1/prompts/{uuid.uuid4()}/imagine", headers=gateway.auth("ada")
    )
    assert response.status_code == 409
    assert [s for s, _ in gateway.services.calls] == [streams.RPC_PROMPTS_PREPARE_GENERATION]


async def test_only_admins_create_users(gateway):
    response = await gateway.client.post(
        "/api/v1/users", json={"name": "eve", "is_admin": True}, headers=gateway.auth("ada")
    )
    assert response.status_code == 403
    created = await gateway.client.post(
        "/api/v1/users", json={"name": "bob"}, headers=gateway.auth("admin")
    )
    assert created.status_code == 201
    key = created.json()["api_key"]
    me = await gateway.client.get("/api/v1/me", headers={"Authorization": f"Bearer {key}"})
    assert me.json()["name"] == "bob"
    assert me.json()["is_admin"] is False


async def test_events_token_is_short_lived_and_bound_to_its_owner(gateway):
    ada = gateway.people["ada"]
    response = await gateway.client.post("/api/v1/events/token", headers=gateway.auth("ada"))
    assert response.status_code == 201
    claims = verify_events_token("events-secret", response.json()["token"])
    assert claims is not None
    assert claims.owner_id == ada.id
    assert claims.expires_at <= time.time() + gateway.settings.events_token_ttl_seconds + 1

    expired, _ = issue_events_token("events-secret", ada.id, 60, now=time.time() - 3600)
    forged, _ = issue_events_token("not-the-secret", ada.id, 60)
    for token in (expired, forged, "garbage", response.json()["token"] + "x"):
        refused = await gateway.client.get("/api/v1/events", params={"token": token})
        assert refused.status_code == 401, token


async def test_the_events_token_is_also_a_cookie_scoped_to_the_stream(gateway):
    response = await gateway.client.post("/api/v1/events/token", headers=gateway.auth("ada"))
    cookie = response.headers["set-cookie"]
    assert cookie.startswith(f"imagetron_events={response.json()['token']};")
    for attribute in ("HttpOnly", "Path=/api/v1/events", "SameSite=strict", "Max-Age="):
        assert attribute in cookie
