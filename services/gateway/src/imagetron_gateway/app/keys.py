"""Use cases of API keys: a user lists, creates, names, revokes and rotates its own keys;
an admin sees every user, disables or deletes one, and revokes any key.

Whatever ends a key ends it everywhere at once: its row is marked revoked and its browser
sessions are deleted in one transaction, then every gateway and notifier replica is told
(`KeyRevocations`), so caches forget it and open event streams opened with it end."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import timedelta
from uuid import UUID

from imagetron_gateway.app.ports import IdentityUnitOfWork, KeyRevocations
from imagetron_gateway.domain.identity import ApiKey, RevokedKey, User, hash_api_key, new_api_key
from imagetron_platform.clock import utcnow
from imagetron_platform.errors import Forbidden, InvalidRequest, NotFound


@dataclass(frozen=True)
class IssuedKey:
    key: ApiKey
    #: The key itself: shown once, never stored.
    secret: str


@dataclass(frozen=True)
class UserAccount:
    user: User
    disabled: bool


async def list_keys(uow: IdentityUnitOfWork, user_id: UUID) -> list[ApiKey]:
    async with uow:
        return await uow.keys.of_user(user_id, utcnow())


async def create_key(
    uow: IdentityUnitOfWork, user: User, name: str, expires_in_days: int | None
) -> IssuedKey:
    now = utcnow()
    expires_at = None if expires_in_days is None else now + timedelta(days=expires_in_days)
    secret = new_api_key()
    key = ApiKey(
        id=uuid.uuid4(),
        user_id=user.id,
        name=name,
        created_at=now,
        expires_at=expires_at,
        last_used_at=None,
    )
    async with uow:
        await uow.keys.add(key, hash_api_key(secret))
        await uow.commit()
    return IssuedKey(key=key, secret=secret)


async def rename_key(uow: IdentityUnitOfWork, user_id: UUID, key_id: UUID, name: str) -> ApiKey:
    async with uow:
        key = await uow.keys.rename(user_id, key_id, name)
        if key is None:
            raise NotFound("No such API key.")
        await uow.commit()
    return key


async def revoke_key(
    uow: IdentityUnitOfWork, revocations: KeyRevocations, user_id: UUID, key_id: UUID
) -> None:
    async with uow:
        key_hash = await uow.keys.revoke(user_id, key_id, utcnow())
        if key_hash is None:
            raise NotFound("No such API key.")
        await uow.commit()
    await revocations.announce(RevokedKey(key_id=key_id, user_id=user_id))


async def rotate_key(
    uow: IdentityUnitOfWork, revocations: KeyRevocations, user: User, key_id: UUID
) -> IssuedKey:
    """A new key with the old one's name and expiry; the old one is revoked at once."""
    now = utcnow()
    secret = new_api_key()
    async with uow:
        old = next((k for k in await uow.keys.of_user(user.id, now) if k.id == key_id), None)
        if old is None:
            raise NotFound("No such API key.")
        key = ApiKey(
            id=uuid.uuid4(),
            user_id=user.id,
            name=old.name,
            created_at=now,
            expires_at=old.expires_at,
            last_used_at=None,
        )
        await uow.keys.add(key, hash_api_key(secret))
        old_hash = await uow.keys.revoke(user.id, key_id, now)
        await uow.commit()
    if old_hash is not None:
        await revocations.announce(RevokedKey(key_id=key_id, user_id=user.id))
    return IssuedKey(key=key, secret=secret)


def _require_admin(caller: User) -> None:
    if not caller.is_admin:
        raise Forbidden("Only an admin can manage other users.")


async def list_users(uow: IdentityUnitOfWork, caller: User) -> list[UserAccount]:
    _require_admin(caller)
    async with uow:
        return [UserAccount(user, disabled) for user, disabled in await uow.users.all()]


async def set_user_disabled(
    uow: IdentityUnitOfWork,
    revocations: KeyRevocations,
    caller: User,
    user_id: UUID,
    *,
    disabled: bool,
) -> UserAccount:
    """Disabling keeps the keys (enabling again restores them) but stops them at once."""
    _require_admin(caller)
    if user_id == caller.id and disabled:
        raise InvalidRequest("An admin cannot disable itself.")
    async with uow:
        if not await uow.users.set_disabled(user_id, utcnow() if disabled else None):
            raise NotFound("No such user.")
        keys = await uow.keys.of_user(user_id, utcnow())
        found = await uow.users.by_id(user_id)
        await uow.commit()
    assert found is not None
    if disabled:
        for key in keys:
            await revocations.announce(RevokedKey(key_id=key.id, user_id=user_id))
    return UserAccount(found, disabled)


async def delete_user(
    uow: IdentityUnitOfWork, revocations: KeyRevocations, caller: User, user_id: UUID
) -> None:
    """The user, its keys and sessions are gone; what it made in the other services stays
    with its owner id (nobody can reach it any more)."""
    _require_admin(caller)
    if user_id == caller.id:
        raise InvalidRequest("An admin cannot delete itself.")
    async with uow:
        revoked = await uow.keys.revoke_all(user_id, utcnow())
        if not await uow.users.remove(user_id):
            raise NotFound("No such user.")
        await uow.commit()
    for key_id, _ in revoked:
        await revocations.announce(RevokedKey(key_id=key_id, user_id=user_id))


async def list_user_keys(uow: IdentityUnitOfWork, caller: User, user_id: UUID) -> list[ApiKey]:
    _require_admin(caller)
    return await list_keys(uow, user_id)


async def revoke_user_key(
    uow: IdentityUnitOfWork,
    revocations: KeyRevocations,
    caller: User,
    user_id: UUID,
    key_id: UUID,
) -> None:
    _require_admin(caller)
    await revoke_key(uow, revocations, user_id, key_id)
