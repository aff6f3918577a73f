"""The edges of identity: keys and users that are not there, an admin that would lock
itself out, the first admin without a fixed key, the key cache's bound, and an
Idempotency-Key whose row keeps vanishing."""

from __future__ import annotations

import uuid
from datetime import timedelta
from typing import Any

import pytest

from imagetron_gateway.app.idempotency import IdempotentRequests
from imagetron_gateway.app.identity import Authenticator, ensure_bootstrap_admin
from imagetron_gateway.domain.identity import hash_api_key
from imagetron_platform.errors import Conflict, Unauthorized


async def test_rotating_a_key_that_is_not_the_callers_is_not_found(gateway):
    keys = (await gateway.client.get("/api/v1/keys", headers=gateway.auth("admin"))).json()
    admins_key = keys["items"][0]["id"]
    for key_id in (admins_key, str(uuid.uuid4())):
        answer = await gateway.client.post(
            f"/api/v1/keys/{key_id}/rotate", headers=gateway.auth("ada")
        )
        assert answer.status_code == 404
        assert answer.json()["detail"] == "No such API key."
    # The admin's key still works: nothing was revoked.
    assert (
        await gateway.client.get("/api/v1/me", headers=gateway.auth("admin"))
    ).status_code == 200
    assert gateway.revocations.announced == []


async def test_an_admin_cannot_disable_itself_nor_a_user_that_does_not_exist(gateway):
    admin = gateway.people["admin"]
    myself = await gateway.client.patch(
        f"/api/v1/users/{admin.id}", json={"disabled": True}, headers=gateway.auth("admin")
    )
    assert myself.status_code == 422
    assert myself.json()["detail"] == "An admin cannot disable itself."
    nobody = await gateway.client.patch(
        f"/api/v1/users/{uuid.uuid4()}", json={"disabled": True}, headers=gateway.auth("admin")
    )
    assert nobody.status_code == 404
    assert (
        await gateway.client.get("/api/v1/me", headers=gateway.auth("admin"))
    ).status_code == 200


async def test_without_a_fixed_key_the_first_admin_is_made_once(fake_identity_uow):
    created = await ensure_bootstrap_admin(fake_identity_uow(), "root", None)
    assert created is not None
    admin, key = created
    assert admin.is_admin
    assert key.startswith("itk_")
    async with fake_identity_uow() as uow:
        assert await uow.users.by_key_hash(hash_api_key(key)) == admin
    # An admin exists now: a restart makes no second one.
    assert await ensure_bootstrap_admin(fake_identity_uow(), "root", None) is None


class CountingUoW:
    """Counts the key look-ups that reach the store."""

    def __init__(self, factory: Any, lookups: list[str]) -> None:
        self.uow = factory()
        self.lookups = lookups

    async def __aenter__(self) -> Any:
        await self.uow.__aenter__()
        outer = self

        class Keys:
            async def active(self, key_hash: str, now: Any) -> Any:
                outer.lookups.append(key_hash)
                return await outer.uow.keys.active(key_hash, now)

        self.keys = Keys()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.uow.__aexit__(*exc)


async def test_the_key_cache_is_bounded_and_forgets_a_revoked_key(fake_identity_uow):
    users: dict[str, str] = {}
    for name in ("a", "b", "c"):
        created = await ensure_bootstrap_admin(fake_identity_uow(), name, f"itk_{name}-key")
        assert created is not None
        users[name] = created[1]
    lookups: list[str] = []
    authenticator = Authenticator(
        lambda: CountingUoW(fake_identity_uow, lookups), cache_seconds=3600, max_entries=2
    )
    a = await authenticator.authenticate(users["a"])
    await authenticator.authenticate(users["a"])
    assert len(lookups) == 1  # a hit
    await authenticator.authenticate(users["b"])
    await authenticator.authenticate(users["c"])  # full: the cache starts again
    await authenticator.authenticate(users["a"])
    assert len(lookups) == 4
    assert a.key_id is not None
    authenticator.forget(a.key_id)
    await authenticator.authenticate(users["a"])
    assert len(lookups) == 5
    # A bad key is cached as a miss too, and still refused.
    for _ in range(2):
        with pytest.raises(Unauthorized):
            await authenticator.authenticate("itk_nobody")
    assert lookups.count(hash_api_key("itk_nobody")) == 1


class VanishingKeys:
    """An Idempotency-Key that another request holds, but whose row is gone whenever it is
    read (given back, or expired, each time in between)."""

    def __init__(self) -> None:
        self.claims = 0

    async def __aenter__(self) -> VanishingKeys:
        self.idempotency = self
        return self

    async def __aexit__(self, *exc: object) -> None:
        return None

    async def commit(self) -> None:
        raise AssertionError("nothing was claimed, nothing to commit")

    async def claim(self, *args: object) -> bool:
        self.claims += 1
        return False

    async def get(self, *args: object) -> None:
        return None


async def test_a_key_that_keeps_vanishing_is_answered_409_after_a_few_tries():
    keys = VanishingKeys()
    requests = IdempotentRequests(
        lambda: keys,  # type: ignore[arg-type,return-value]
        ttl=timedelta(hours=24),
        lock=timedelta(minutes=5),
    )
    with pytest.raises(Conflict) as refused:
        await requests.begin(uuid.uuid4(), "k", "fingerprint")
    assert refused.value.status == 409
    assert 1 < keys.claims <= 5  # bounded: it does not spin


async def test_expired_idempotency_keys_are_removed_by_the_round(fake_identity_uow):
    requests = IdempotentRequests(
        fake_identity_uow, ttl=timedelta(seconds=-1), lock=timedelta(minutes=5)
    )
    user = uuid.uuid4()
    assert await requests.begin(user, "k1", "f") is None
    assert await requests.begin(user, "k2", "f") is None
    assert await requests.remove_expired() == 2
    assert await requests.remove_expired() == 0
