from __future__ import annotations

from datetime import datetime
from uuid import UUID

from sqlalchemy import RowMapping, delete, exists, insert, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from imagetron_gateway.adapters.tables import api_keys, sessions, users
from imagetron_gateway.domain.identity import BrowserSession, User
from imagetron_platform.clock import utcnow
from imagetron_platform.db import SqlUnitOfWork


def _user(m: RowMapping) -> User:
    return User(id=m["id"], name=m["name"], is_admin=m["is_admin"], created_at=m["created_at"])


class SqlUsers:
    def __init__(self, session: AsyncSession) -> None:
        self._session = session

    async def add(self, user: User, key_hash: str) -> None:
        await self._session.execute(
            insert(users).values(
                id=user.id, name=user.name, is_admin=user.is_admin, created_at=user.created_at
            )
        )
        await self._session.execute(
            insert(api_keys).values(key_hash=key_hash, user_id=user.id, created_at=utcnow())
        )

    async def by_key_hash(self, key_hash: str) -> User | None:
        row = (
            await self._session.execute(
                select(users.c.id, users.c.name, users.c.is_admin, users.c.created_at)
                .join(api_keys, api_keys.c.user_id == users.c.id)
                .where(api_keys.c.key_hash == key_hash)
            )
        ).first()
        return None if row is None else _user(row._mapping)

    async def by_id(self, user_id: UUID) -> User | None:
        row = (
            await self._session.execute(
                select(users.c.id, users.c.name, users.c.is_admin, users.c.created_at).where(
                    users.c.id == user_id
                )
            )
        ).first()
        return None if row is None else _user(row._mapping)

    async def any_admin(self) -> bool:
        return bool(await self._session.scalar(select(exists().where(users.c.is_admin))))


class SqlSessions:
    def __init__(self, session: AsyncSession) -> None:
        self._session = session

    async def add(self, session: BrowserSession) -> None:
        await self._session.execute(
            insert(sessions).values(
                token_hash=session.token_hash,
                user_id=session.user_id,
                key_hash=session.key_hash,
                created_at=session.created_at,
                expires_at=session.expires_at,
            )
        )

    async def active(self, token_hash: str, now: datetime) -> tuple[User, BrowserSession] | None:
        # The join with the key is the point: a session whose key is gone is no session.
        row = (
            await self._session.execute(
                select(
                    users.c.id,
                    users.c.name,
                    users.c.is_admin,
                    users.c.created_at,
                    sessions.c.token_hash,
                    sessions.c.key_hash,
                    sessions.c.created_at.label("session_created_at"),
                    sessions.c.expires_at,
                )
                .join(api_keys, api_keys.c.key_hash == sessions.c.key_hash)
                .join(users, users.c.id == api_keys.c.user_id)
                .where(sessions.c.token_hash == token_hash, sessions.c.expires_at > now)
            )
        ).first()
        if row is None:
            return None
        m = row._mapping
        return _user(m), BrowserSession(
            token_hash=m["token_hash"],
            user_id=m["id"],
            key_hash=m["key_hash"],
            created_at=m["session_created_at"],
            expires_at=m["expires_at"],
        )

    async def remove(self, token_hash: str) -> None:
        await self._session.execute(delete(sessions).where(sessions.c.token_hash == token_hash))

    async def keep_newest(self, user_id: UUID, count: int) -> None:
        newest = (
            select(sessions.c.token_hash)
            .where(sessions.c.user_id == user_id)
            .order_by(sessions.c.created_at.desc(), sessions.c.token_hash)
            .limit(count)
        )
        await self._session.execute(
            delete(sessions).where(
                sessions.c.user_id == user_id, sessions.c.token_hash.not_in(newest)
            )
        )

    async def remove_expired(self, now: datetime, limit: int) -> int:
        batch = (
            select(sessions.c.token_hash)
            .where(sessions.c.expires_at <= now)
            .limit(limit)
            .scalar_subquery()
        )
        result = await self._session.execute(
            delete(sessions)
            .where(sessions.c.token_hash.in_(batch))
            .returning(sessions.c.token_hash)
        )
        return len(result.all())


class SqlIdentityUnitOfWork(SqlUnitOfWork):
    def __init__(self, session_factory: async_sessionmaker[AsyncSession]) -> None:
        super().__init__(session_factory)

    @property
    def users(self) -> SqlUsers:
        return SqlUsers(self.session)

    @property
    def sessions(self) -> SqlSessions:
        return SqlSessions(self.session)
