"""Use cases of identity: who is calling, new users, the first admin, browser sessions."""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from uuid import UUID

from imagetron_gateway.app.ports import IdentityUnitOfWork
from imagetron_gateway.domain.identity import (
    BrowserSession,
    Caller,
    User,
    hash_api_key,
    hash_session_token,
    new_api_key,
    new_session_token,
)
from imagetron_platform.clock import utcnow
from imagetron_platform.errors import Conflict, Forbidden, Unauthorized
from imagetron_platform.pruning import remove_in_batches


async def create_user(
    uow: IdentityUnitOfWork, caller: User, name: str, *, is_admin: bool
) -> tuple[User, str]:
    if not caller.is_admin:
        raise Forbidden("Only an admin can create users.")
    return await _add_user(uow, name, is_admin=is_admin, api_key=new_api_key())


async def ensure_bootstrap_admin(
    uow: IdentityUnitOfWork, name: str, api_key: str | None
) -> tuple[User, str] | None:
    """Create the first admin if there is none; returns it with its key, or None.

    With a fixed `api_key` the admin is (re)registered under that key when missing, so the
    documented key works on every start."""
    async with uow:
        if api_key is not None:
            # A revoked bootstrap key stays revoked: it is not issued again on restart.
            if await uow.users.known_key(hash_api_key(api_key)):
                return None
        elif await uow.users.any_admin():
            return None
    try:
        return await _add_user(uow, name, is_admin=True, api_key=api_key or new_api_key())
    except Conflict:
        return None  # another replica, starting at the same moment, registered it first


async def _add_user(
    uow: IdentityUnitOfWork, name: str, *, is_admin: bool, api_key: str
) -> tuple[User, str]:
    user = User(id=uuid.uuid4(), name=name, is_admin=is_admin, created_at=utcnow())
    async with uow:
        await uow.users.add(user, hash_api_key(api_key))
        await uow.commit()
    return user, api_key


class Authenticator:
    """Resolves API keys to callers, caching hits briefly so a busy client costs no query
    per request (and misses, so a flood of bad keys costs none either). A revoked key is
    evicted at once (`forget`, on the revocation announcement), so the cache never
    outlives a revocation on a connected replica. Uses are remembered here and written
    as `last_used_at` in batches (`record_uses`), not once per request."""

    def __init__(
        self,
        uow_factory: Callable[[], IdentityUnitOfWork],
        cache_seconds: float,
        clock: Callable[[], float] = time.monotonic,
        max_entries: int = 10_000,
    ) -> None:
        self._uow_factory = uow_factory
        self._cache_seconds = cache_seconds
        self._clock = clock
        self._max_entries = max_entries
        self._cache: dict[str, tuple[float, Caller | None]] = {}
        self._hashes: dict[UUID, str] = {}
        self._used: dict[UUID, datetime] = {}

    async def authenticate(self, api_key: str | None) -> Caller:
        if not api_key:
            raise Unauthorized("Send `Authorization: Bearer <api key>`.")
        key_hash = hash_api_key(api_key)
        now = self._clock()
        hit = self._cache.get(key_hash)
        if hit is not None and hit[0] > now:
            caller = hit[1]
        else:
            async with self._uow_factory() as uow:
                found = await uow.keys.active(key_hash, utcnow())
            caller = None if found is None else Caller(user=found[0], key_id=found[1].id)
            expires = now + self._cache_seconds
            if found is not None and found[1].expires_at is not None:
                # Never cache a key past its own expiry.
                expires = min(expires, now + (found[1].expires_at - utcnow()).total_seconds())
            if len(self._cache) >= self._max_entries:
                self._cache.clear()
                self._hashes.clear()
            self._cache[key_hash] = (expires, caller)
            if caller is not None and caller.key_id is not None:
                self._hashes[caller.key_id] = key_hash
        if caller is None:
            raise Unauthorized("The API key is not valid.")
        if caller.key_id is not None:
            self._used[caller.key_id] = utcnow()
        return caller

    def forget(self, key_id: UUID) -> None:
        key_hash = self._hashes.pop(key_id, None)
        if key_hash is not None:
            self._cache.pop(key_hash, None)

    async def record_uses(self) -> None:
        used, self._used = self._used, {}
        if not used:
            return
        async with self._uow_factory() as uow:
            await uow.keys.record_use(used)
            await uow.commit()


@dataclass(frozen=True)
class SignedIn:
    user: User
    #: The secret the cookie carries; only its hash is stored.
    token: str
    session: BrowserSession


async def sign_in(
    uow: IdentityUnitOfWork, api_key: str, *, ttl: timedelta, max_sessions: int
) -> SignedIn:
    """Open a browser session for the key's user. The user's oldest sessions beyond
    `max_sessions` end, so signing in again and again cannot pile up rows."""
    key_hash = hash_api_key(api_key)
    token = new_session_token()
    now = utcnow()
    async with uow:
        user = await uow.users.by_key_hash(key_hash)
        if user is None:
            raise Unauthorized("The API key is not valid.")
        session = BrowserSession(
            token_hash=hash_session_token(token),
            user_id=user.id,
            key_hash=key_hash,
            created_at=now,
            expires_at=now + ttl,
        )
        await uow.sessions.add(session)
        await uow.sessions.keep_newest(user.id, max_sessions)
        await uow.commit()
    return SignedIn(user=user, token=token, session=session)


async def session_user(uow: IdentityUnitOfWork, token: str) -> tuple[User, BrowserSession]:
    """Who a session cookie belongs to. Not cached: signing out or revoking the key ends
    the session on the very next request."""
    async with uow:
        found = await uow.sessions.active(hash_session_token(token), utcnow())
    if found is None:
        raise Unauthorized("The session has ended; sign in again.")
    return found


async def sign_out(uow: IdentityUnitOfWork, token: str) -> None:
    async with uow:
        await uow.sessions.remove(hash_session_token(token))
        await uow.commit()


async def remove_expired_sessions(uow: IdentityUnitOfWork) -> int:
    """End every session expired by now, a batch per transaction; how many."""
    now = utcnow()
    return await remove_in_batches(
        lambda: uow, lambda unit, batch: unit.sessions.remove_expired(now, batch)
    )
