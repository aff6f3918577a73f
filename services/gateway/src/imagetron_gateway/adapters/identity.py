from __future__ import annotations

from uuid import UUID

from sqlalchemy import RowMapping, exists, insert, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from imagetron_gateway.adapters.tables import api_keys, users
from imagetron_gateway.domain.identity import User
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


class SqlIdentityUnitOfWork(SqlUnitOfWork):
    def __init__(self, session_factory: async_sessionmaker[AsyncSession]) -> None:
        super().__init__(session_factory)

    @property
    def users(self) -> SqlUsers:
        return SqlUsers(self.session)
