"""Sessions in the real identity schema: a session dies with its API key, at expiry, and
when a user opens more than allowed; expired rows are cleaned up in bounded batches."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from datetime import timedelta
from uuid import UUID

import pytest
from sqlalchemy import delete, func, select

from imagetron_gateway.adapters.identity import SqlIdentityUnitOfWork
from imagetron_gateway.adapters.tables import api_keys, sessions
from imagetron_gateway.app.identity import (
    create_user,
    ensure_bootstrap_admin,
    remove_expired_sessions,
    session_user,
    sign_in,
)
from imagetron_gateway.domain.identity import BrowserSession, hash_api_key
from imagetron_gateway.migrations import upgrade
from imagetron_platform.clock import utcnow
from imagetron_platform.db import make_engine, make_session_factory
from imagetron_platform.errors import Unauthorized
from imagetron_platform.pruning import PRUNE_BATCH

pytestmark = pytest.mark.integration
DAY = timedelta(days=1)


@pytest.fixture
async def uow_factory(postgres_dsn: str) -> AsyncIterator:
    await asyncio.to_thread(upgrade, postgres_dsn)
    engine = make_engine(postgres_dsn)
    factory = make_session_factory(engine)
    try:
        yield lambda: SqlIdentityUnitOfWork(factory)
    finally:
        await engine.dispose()


async def _user_with_key(uow_factory) -> tuple[str, str]:
    admin_key = "itk_sessions-sql-admin"
    await ensure_bootstrap_admin(uow_factory(), "admin", admin_key)
    async with uow_factory() as uow:
        admin = await uow.users.by_key_hash(hash_api_key(admin_key))
    user, key = await create_user(uow_factory(), admin, "ada", is_admin=False)
    return str(user.id), key


async def test_a_session_ends_when_its_api_key_is_deleted(uow_factory):
    user_id, key = await _user_with_key(uow_factory)
    signed_in = await sign_in(uow_factory(), key, ttl=DAY, max_sessions=5)
    user, _ = await session_user(uow_factory(), signed_in.token)
    assert str(user.id) == user_id

    async with uow_factory() as uow:
        await uow.session.execute(delete(api_keys).where(api_keys.c.key_hash == hash_api_key(key)))
        await uow.commit()
    with pytest.raises(Unauthorized):
        await session_user(uow_factory(), signed_in.token)
    async with uow_factory() as uow:  # the foreign key removed the row itself
        assert (
            await uow.sessions.active(signed_in.session.token_hash, signed_in.session.created_at)
            is None
        )


async def test_expired_sessions_are_refused_and_pruned(uow_factory):
    _, key = await _user_with_key(uow_factory)
    expired = await sign_in(uow_factory(), key, ttl=timedelta(seconds=-1), max_sessions=5)
    alive = await sign_in(uow_factory(), key, ttl=DAY, max_sessions=5)
    with pytest.raises(Unauthorized):
        await session_user(uow_factory(), expired.token)
    assert await remove_expired_sessions(uow_factory()) >= 1
    assert await remove_expired_sessions(uow_factory()) == 0
    await session_user(uow_factory(), alive.token)


async def test_one_round_removes_more_than_a_batch_of_expired_sessions(uow_factory):
    user_id, key = await _user_with_key(uow_factory)
    now = utcnow()
    expired = [
        BrowserSession(f"expired-{uuid.uuid4()}", UUID(user_id), hash_api_key(key), now - DAY, now)
        for _ in range(PRUNE_BATCH + 1)
    ]
    async with uow_factory() as uow:
        for session in expired:
            await uow.sessions.add(session)
        await uow.commit()
    alive = await sign_in(uow_factory(), key, ttl=DAY, max_sessions=PRUNE_BATCH + 2)

    assert await remove_expired_sessions(uow_factory()) >= len(expired)

    async with uow_factory() as uow:
        left = await uow.session.scalar(
            select(func.count()).where(sessions.c.token_hash.in_(s.token_hash for s in expired))
        )
    assert left == 0
    await session_user(uow_factory(), alive.token)


async def test_only_the_newest_sessions_of_a_user_stay(uow_factory):
    _, key = await _user_with_key(uow_factory)
    opened = [await sign_in(uow_factory(), key, ttl=DAY, max_sessions=2) for _ in range(4)]
    for old in opened[:2]:
        with pytest.raises(Unauthorized):
            await session_user(uow_factory(), old.token)
    for new in opened[2:]:
        await session_user(uow_factory(), new.token)


async def test_replicas_starting_together_register_the_bootstrap_admin_once(uow_factory):
    """Two gateway replicas started at the same moment both find no admin key; one
    registers it, the other starts anyway (it failed its start-up on the duplicate key)."""
    key = "itk_two-replicas-bootstrap"
    created = await asyncio.gather(
        *(ensure_bootstrap_admin(uow_factory(), "admin", key) for _ in range(4))
    )
    assert sum(result is not None for result in created) == 1
    async with uow_factory() as uow:
        assert await uow.users.by_key_hash(hash_api_key(key)) is not None
