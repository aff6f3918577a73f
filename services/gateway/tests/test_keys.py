"""API keys: each user manages its own; an admin sees every user and revokes any key.
Whatever ends a key ends it at once: requests, browser sessions, events tokens."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

from imagetron_gateway.app.identity import ensure_bootstrap_admin
from imagetron_gateway.domain.identity import hash_api_key
from imagetron_platform.events_tokens import issue_events_token


def _bearer(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


async def _new_key(gateway, name="ci", **body):
    response = await gateway.client.post(
        "/api/v1/keys", json={"name": name, **body}, headers=gateway.auth("ada")
    )
    assert response.status_code == 201, response.text
    return response.json()


async def test_a_user_lists_makes_and_names_its_own_keys(gateway):
    created = await _new_key(gateway, "laptop")
    assert created["api_key"].startswith("itk_")
    assert (await gateway.client.get("/api/v1/me", headers=_bearer(created["api_key"]))).json()[
        "name"
    ] == "ada"
    renamed = await gateway.client.patch(
        f"/api/v1/keys/{created['key']['id']}", json={"name": "desk"}, headers=gateway.auth("ada")
    )
    assert renamed.json()["name"] == "desk"
    listed = (await gateway.client.get("/api/v1/keys", headers=gateway.auth("ada"))).json()
    assert [k["name"] for k in listed["items"]] == ["desk", "default"]
    assert "api_key" not in str(listed)  # never shown again
    # Another user's keys are not the caller's.
    other = await gateway.client.patch(
        f"/api/v1/keys/{created['key']['id']}", json={"name": "mine"}, headers=gateway.auth("admin")
    )
    assert other.status_code == 404


async def test_a_revoked_key_is_refused_at_once_and_announced(gateway):
    created = await _new_key(gateway)
    headers = _bearer(created["api_key"])
    assert (await gateway.client.get("/api/v1/me", headers=headers)).status_code == 200
    revoked = await gateway.client.delete(
        f"/api/v1/keys/{created['key']['id']}", headers=gateway.auth("ada")
    )
    assert revoked.status_code == 204
    assert (await gateway.client.get("/api/v1/me", headers=headers)).status_code == 401
    [announced] = gateway.revocations.announced
    assert str(announced.key_id) == created["key"]["id"]
    again = await gateway.client.delete(
        f"/api/v1/keys/{created['key']['id']}", headers=gateway.auth("ada")
    )
    assert again.status_code == 404


async def test_rotation_replaces_the_key_and_keeps_its_name_and_expiry(gateway):
    created = await _new_key(gateway, "deploy", expires_in_days=30)
    expires = datetime.fromisoformat(created["key"]["expires_at"])
    assert timedelta(days=29) < expires - datetime.now(UTC) <= timedelta(days=30)
    rotated = await gateway.client.post(
        f"/api/v1/keys/{created['key']['id']}/rotate", headers=gateway.auth("ada")
    )
    assert rotated.status_code == 201
    new = rotated.json()
    assert (new["key"]["name"], new["key"]["expires_at"]) == (
        "deploy",
        created["key"]["expires_at"],
    )
    assert (
        await gateway.client.get("/api/v1/me", headers=_bearer(new["api_key"]))
    ).status_code == 200
    old = await gateway.client.get("/api/v1/me", headers=_bearer(created["api_key"]))
    assert old.status_code == 401


async def test_an_expired_key_is_refused_and_expiry_is_counted_in_days(gateway):
    for days in (0, -1, 3651, 1.5):
        invalid = await gateway.client.post(
            "/api/v1/keys", json={"name": "x", "expires_in_days": days}, headers=gateway.auth("ada")
        )
        assert invalid.status_code == 422, days
    created = await _new_key(gateway)
    key_hash = hash_api_key(created["api_key"])
    key = gateway.users.key_of[key_hash]
    gateway.users.key_of[key_hash] = type(key)(
        **{**key.__dict__, "expires_at": datetime.now(UTC) - timedelta(seconds=1)}
    )
    response = await gateway.client.get("/api/v1/me", headers=_bearer(created["api_key"]))
    assert response.status_code == 401


async def test_sessions_and_events_tokens_die_with_their_key(gateway):
    created = await _new_key(gateway)
    signed_in = await gateway.client.post("/api/v1/session", json={"api_key": created["api_key"]})
    assert signed_in.status_code == 201
    # The client keeps the session cookie from here on.
    assert (await gateway.client.get("/api/v1/me")).status_code == 200
    token = (
        await gateway.client.post("/api/v1/events/token", headers=_bearer(created["api_key"]))
    ).json()["token"]
    await gateway.client.delete(f"/api/v1/keys/{created['key']['id']}", headers=gateway.auth("ada"))
    assert (await gateway.client.get("/api/v1/me")).status_code == 401
    # The dead session cookie would be refused first: the token alone must be refused too.
    gateway.client.cookies.clear()
    stream = await gateway.client.get("/api/v1/events", params={"token": token})
    assert stream.status_code == 401
    # A token without a key (or of no known key) is no token either.
    keyless, _ = issue_events_token("events-secret", gateway.people["ada"].id, 60)
    foreign, _ = issue_events_token(
        "events-secret", gateway.people["ada"].id, 60, key_id=uuid.uuid4()
    )
    for bad in (keyless, foreign):
        assert (
            await gateway.client.get("/api/v1/events", params={"token": bad})
        ).status_code == 401


async def test_uses_are_recorded_as_last_used(gateway):
    created = await _new_key(gateway)
    await gateway.client.get("/api/v1/me", headers=_bearer(created["api_key"]))
    await gateway.state["context"].authenticator.record_uses()
    assert uuid.UUID(created["key"]["id"]) in gateway.users.last_used


async def test_only_an_admin_sees_users_and_their_keys(gateway):
    assert (
        await gateway.client.get("/api/v1/users", headers=gateway.auth("ada"))
    ).status_code == 403
    ada = gateway.people["ada"]
    listed = (await gateway.client.get("/api/v1/users", headers=gateway.auth("admin"))).json()
    assert {u["name"] for u in listed["items"]} == {"admin", "ada"}
    keys = await gateway.client.get(f"/api/v1/users/{ada.id}/keys", headers=gateway.auth("admin"))
    [key] = keys.json()["items"]
    forbidden = await gateway.client.delete(
        f"/api/v1/users/{ada.id}/keys/{key['id']}", headers=gateway.auth("ada")
    )
    assert forbidden.status_code == 403
    revoked = await gateway.client.delete(
        f"/api/v1/users/{ada.id}/keys/{key['id']}", headers=gateway.auth("admin")
    )
    assert revoked.status_code == 204
    assert (await gateway.client.get("/api/v1/me", headers=gateway.auth("ada"))).status_code == 401


async def test_a_disabled_user_is_refused_until_enabled_and_a_deleted_one_for_good(gateway):
    ada = gateway.people["ada"]
    admin = gateway.auth("admin")
    disabled = await gateway.client.patch(
        f"/api/v1/users/{ada.id}", json={"disabled": True}, headers=admin
    )
    assert disabled.json()["disabled"] is True
    assert (await gateway.client.get("/api/v1/me", headers=gateway.auth("ada"))).status_code == 401
    await gateway.client.patch(f"/api/v1/users/{ada.id}", json={"disabled": False}, headers=admin)
    assert (await gateway.client.get("/api/v1/me", headers=gateway.auth("ada"))).status_code == 200
    myself = await gateway.client.delete(
        f"/api/v1/users/{gateway.people['admin'].id}", headers=admin
    )
    assert myself.status_code == 422
    assert (
        await gateway.client.delete(f"/api/v1/users/{ada.id}", headers=admin)
    ).status_code == 204
    assert (await gateway.client.get("/api/v1/me", headers=gateway.auth("ada"))).status_code == 401
    assert (
        await gateway.client.delete(f"/api/v1/users/{ada.id}", headers=admin)
    ).status_code == 404


async def test_a_revoked_bootstrap_key_does_not_come_back_on_restart(gateway):
    admin_key = gateway.keys["admin"]
    [key] = (await gateway.client.get("/api/v1/keys", headers=gateway.auth("admin"))).json()[
        "items"
    ]
    await gateway.client.delete(f"/api/v1/keys/{key['id']}", headers=gateway.auth("admin"))
    uow = gateway.state["context"].identity_uow()
    created = await ensure_bootstrap_admin(uow, "admin", admin_key)
    assert created is None
    assert (await gateway.client.get("/api/v1/me", headers=_bearer(admin_key))).status_code == 401
