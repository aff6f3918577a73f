from __future__ import annotations

from datetime import date, datetime
from typing import Any
from uuid import UUID

from sqlalchemy import RowMapping, and_, delete, exists, insert, or_, select, tuple_, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from imagetron_gateway.adapters.tables import (
    api_keys,
    daily_usage,
    idempotency_keys,
    request_charges,
    sessions,
    users,
)
from imagetron_gateway.app.ports import Answer, KeyRecord
from imagetron_gateway.domain.identity import ApiKey, BrowserSession, User
from imagetron_platform.clock import utcnow
from imagetron_platform.db import SqlUnitOfWork
from imagetron_platform.errors import Conflict
from imagetron_platform.pruning import delete_batch


def _user(m: RowMapping) -> User:
    return User(id=m["id"], name=m["name"], is_admin=m["is_admin"], created_at=m["created_at"])


_USER_COLUMNS = (users.c.id, users.c.name, users.c.is_admin, users.c.created_at)
_KEY_COLUMNS = (
    api_keys.c.id.label("key_id"),
    api_keys.c.name.label("key_name"),
    api_keys.c.created_at.label("key_created_at"),
    api_keys.c.expires_at,
    api_keys.c.last_used_at,
)


def _key(m: RowMapping) -> ApiKey:
    return ApiKey(
        id=m["key_id"],
        user_id=m["id"],
        name=m["key_name"],
        created_at=m["key_created_at"],
        expires_at=m["expires_at"],
        last_used_at=m["last_used_at"],
    )


def usable(now: datetime) -> Any:
    """A key that works now: not revoked, not expired, of a user who is not disabled."""
    return and_(
        api_keys.c.revoked_at.is_(None),
        or_(api_keys.c.expires_at.is_(None), api_keys.c.expires_at > now),
        users.c.disabled_at.is_(None),
    )


class SqlUsers:
    def __init__(self, session: AsyncSession) -> None:
        self._session = session

    async def add(self, user: User, key_hash: str) -> None:
        await self._session.execute(
            insert(users).values(
                id=user.id, name=user.name, is_admin=user.is_admin, created_at=user.created_at
            )
        )
        added = await self._session.execute(
            pg_insert(api_keys)
            .values(key_hash=key_hash, user_id=user.id, created_at=utcnow())
            .on_conflict_do_nothing()
            .returning(api_keys.c.key_hash)
        )
        if added.first() is None:
            raise Conflict("This API key is already issued.")

    async def by_key_hash(self, key_hash: str) -> User | None:
        row = (
            await self._session.execute(
                select(*_USER_COLUMNS)
                .join(api_keys, api_keys.c.user_id == users.c.id)
                .where(api_keys.c.key_hash == key_hash, usable(utcnow()))
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

    async def known_key(self, key_hash: str) -> bool:
        """Whether the key was ever issued (revoked or not)."""
        return bool(
            await self._session.scalar(select(exists().where(api_keys.c.key_hash == key_hash)))
        )

    async def all(self) -> list[tuple[User, bool]]:
        rows = await self._session.execute(
            select(*_USER_COLUMNS, users.c.disabled_at).order_by(users.c.created_at, users.c.id)
        )
        return [(_user(r._mapping), r.disabled_at is not None) for r in rows]

    async def set_disabled(self, user_id: UUID, disabled_at: datetime | None) -> bool:
        result = await self._session.execute(
            update(users)
            .where(users.c.id == user_id)
            .values(disabled_at=disabled_at)
            .returning(users.c.id)
        )
        return result.first() is not None

    async def remove(self, user_id: UUID) -> bool:
        result = await self._session.execute(
            delete(users).where(users.c.id == user_id).returning(users.c.id)
        )
        return result.first() is not None


class SqlApiKeys:
    def __init__(self, session: AsyncSession) -> None:
        self._session = session

    async def add(self, key: ApiKey, key_hash: str) -> None:
        await self._session.execute(
            insert(api_keys).values(
                key_hash=key_hash,
                id=key.id,
                user_id=key.user_id,
                name=key.name,
                created_at=key.created_at,
                expires_at=key.expires_at,
            )
        )

    async def _one(self, *where: Any) -> tuple[User, ApiKey] | None:
        row = (
            await self._session.execute(
                select(*_USER_COLUMNS, *_KEY_COLUMNS)
                .join(api_keys, api_keys.c.user_id == users.c.id)
                .where(*where)
            )
        ).first()
        return None if row is None else (_user(row._mapping), _key(row._mapping))

    async def active(self, key_hash: str, now: datetime) -> tuple[User, ApiKey] | None:
        return await self._one(api_keys.c.key_hash == key_hash, usable(now))

    async def active_by_id(self, key_id: UUID, now: datetime) -> tuple[User, ApiKey] | None:
        return await self._one(api_keys.c.id == key_id, usable(now))

    async def of_user(self, user_id: UUID, now: datetime) -> list[ApiKey]:
        rows = await self._session.execute(
            select(*_USER_COLUMNS, *_KEY_COLUMNS)
            .join(api_keys, api_keys.c.user_id == users.c.id)
            .where(users.c.id == user_id, api_keys.c.revoked_at.is_(None))
            .where(or_(api_keys.c.expires_at.is_(None), api_keys.c.expires_at > now))
            .order_by(api_keys.c.created_at.desc(), api_keys.c.id)
        )
        return [_key(r._mapping) for r in rows]

    async def rename(self, user_id: UUID, key_id: UUID, name: str) -> ApiKey | None:
        await self._session.execute(
            update(api_keys)
            .where(
                api_keys.c.id == key_id,
                api_keys.c.user_id == user_id,
                api_keys.c.revoked_at.is_(None),
            )
            .values(name=name)
        )
        found = await self._one(api_keys.c.id == key_id, api_keys.c.revoked_at.is_(None))
        return found[1] if found is not None and found[0].id == user_id else None

    async def revoke(self, user_id: UUID, key_id: UUID, now: datetime) -> str | None:
        key_hash: str | None = await self._session.scalar(
            update(api_keys)
            .where(
                api_keys.c.id == key_id,
                api_keys.c.user_id == user_id,
                api_keys.c.revoked_at.is_(None),
            )
            .values(revoked_at=now)
            .returning(api_keys.c.key_hash)
        )
        if key_hash is not None:
            await self._session.execute(delete(sessions).where(sessions.c.key_hash == key_hash))
        return key_hash

    async def revoke_all(self, user_id: UUID, now: datetime) -> list[tuple[UUID, str]]:
        rows = await self._session.execute(
            update(api_keys)
            .where(api_keys.c.user_id == user_id, api_keys.c.revoked_at.is_(None))
            .values(revoked_at=now)
            .returning(api_keys.c.id, api_keys.c.key_hash)
        )
        revoked = [(r.id, r.key_hash) for r in rows]
        await self._session.execute(delete(sessions).where(sessions.c.user_id == user_id))
        return revoked

    async def record_use(self, last_used: dict[UUID, datetime]) -> None:
        for key_id, when in last_used.items():
            await self._session.execute(
                update(api_keys)
                .where(
                    api_keys.c.id == key_id,
                    or_(api_keys.c.last_used_at.is_(None), api_keys.c.last_used_at < when),
                )
                .values(last_used_at=when)
            )


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
                    api_keys.c.id.label("key_id"),
                )
                .join(api_keys, api_keys.c.key_hash == sessions.c.key_hash)
                .join(users, users.c.id == api_keys.c.user_id)
                .where(sessions.c.token_hash == token_hash, sessions.c.expires_at > now)
                .where(usable(now))
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
            key_id=m["key_id"],
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
        expired = select(sessions.c.token_hash).where(sessions.c.expires_at <= now)
        return await delete_batch(self._session, sessions, sessions.c.token_hash, expired, limit)


class SqlUsage:
    def __init__(self, session: AsyncSession) -> None:
        self._session = session

    async def spend(
        self, user_id: UUID, day: date, kind: str, limit: int, request_id: str | None = None
    ) -> bool:
        if request_id is not None:
            # The charge's row first: a second attempt at the same request (another replica)
            # waits here for the first's transaction, then finds its charge, or none if the
            # first was refused.
            charged = await self._session.execute(
                pg_insert(request_charges)
                .values(request_id=request_id, user_id=user_id, day=day, kind=kind)
                .on_conflict_do_nothing()
                .returning(request_charges.c.request_id)
            )
            if charged.first() is None:
                return True  # charged before: not again, whatever is left today
        if await self._count(user_id, day, kind, limit):
            return True
        if request_id is not None:
            await self._session.execute(
                delete(request_charges).where(request_charges.c.request_id == request_id)
            )
        return False

    async def _count(self, user_id: UUID, day: date, kind: str, limit: int) -> bool:
        if limit < 1:
            return False
        # One statement: concurrent spends on any replica serialise on the row.
        statement = (
            pg_insert(daily_usage)
            .values(user_id=user_id, day=day, kind=kind, used=1)
            .on_conflict_do_update(
                index_elements=[daily_usage.c.user_id, daily_usage.c.day, daily_usage.c.kind],
                set_={"used": daily_usage.c.used + 1},
                where=daily_usage.c.used < limit,
            )
            .returning(daily_usage.c.used)
        )
        return (await self._session.execute(statement)).first() is not None

    async def give_back(
        self, user_id: UUID, day: date, kind: str, request_id: str | None = None
    ) -> None:
        usage = daily_usage.c
        if request_id is None:
            await self._session.execute(
                update(daily_usage)
                .where(usage.user_id == user_id, usage.day == day, usage.kind == kind)
                .where(usage.used > 0)
                .values(used=usage.used - 1)
            )
            return
        # One statement: only the attempt that deletes the charge gives it back.
        charge = (
            delete(request_charges)
            .where(request_charges.c.request_id == request_id)
            .where(request_charges.c.user_id == user_id)
            .returning(request_charges.c.day, request_charges.c.kind)
            .cte("charge")
        )
        await self._session.execute(
            update(daily_usage)
            .where(usage.user_id == user_id, usage.day == charge.c.day)
            .where(usage.kind == charge.c.kind, usage.used > 0)
            .values(used=usage.used - 1)
        )

    async def of_day(self, user_id: UUID, day: date) -> dict[str, int]:
        rows = await self._session.execute(
            select(daily_usage.c.kind, daily_usage.c.used).where(
                daily_usage.c.user_id == user_id, daily_usage.c.day == day
            )
        )
        return {r.kind: r.used for r in rows}

    async def remove_charges_before(self, day: date, limit: int) -> int:
        charge = request_charges.c
        past = select(charge.request_id).where(charge.day < day)
        return await delete_batch(self._session, request_charges, charge.request_id, past, limit)

    async def remove_counts_before(self, day: date, limit: int) -> int:
        usage = daily_usage.c
        past = select(usage.user_id, usage.day, usage.kind).where(usage.day < day)
        key = tuple_(usage.user_id, usage.day, usage.kind)
        return await delete_batch(self._session, daily_usage, key, past, limit)


class SqlIdempotencyKeys:
    def __init__(self, session: AsyncSession) -> None:
        self._session = session

    async def claim(
        self,
        user_id: UUID,
        key: str,
        fingerprint: str,
        now: datetime,
        expires_at: datetime,
        locked_until: datetime,
    ) -> bool:
        # One statement, so two replicas claiming the same key at once cannot both win: a
        # new key, an expired one, or one whose first request was abandoned (its replica
        # died) by this same request.
        row = idempotency_keys.c
        statement = (
            pg_insert(idempotency_keys)
            .values(
                user_id=user_id,
                key=key,
                fingerprint=fingerprint,
                created_at=now,
                expires_at=expires_at,
                locked_until=locked_until,
            )
            .on_conflict_do_update(
                index_elements=[row.user_id, row.key],
                set_={
                    "fingerprint": fingerprint,
                    "created_at": now,
                    "expires_at": expires_at,
                    "locked_until": locked_until,
                    "status": None,
                    "headers": None,
                    "body": None,
                },
                where=or_(
                    row.expires_at <= now,
                    and_(
                        row.status.is_(None),
                        row.locked_until <= now,
                        row.fingerprint == fingerprint,
                    ),
                ),
            )
            .returning(row.key)
        )
        return (await self._session.execute(statement)).first() is not None

    async def get(self, user_id: UUID, key: str, now: datetime) -> KeyRecord | None:
        row = idempotency_keys.c
        found = (
            await self._session.execute(
                select(row.fingerprint, row.status, row.headers, row.body).where(
                    row.user_id == user_id, row.key == key, row.expires_at > now
                )
            )
        ).first()
        if found is None:
            return None
        answer = (
            None
            if found.status is None
            else Answer(found.status, dict(found.headers or {}), bytes(found.body or b""))
        )
        return KeyRecord(fingerprint=found.fingerprint, answer=answer)

    async def complete(self, user_id: UUID, key: str, fingerprint: str, answer: Answer) -> None:
        row = idempotency_keys.c
        await self._session.execute(
            update(idempotency_keys)
            .where(
                row.user_id == user_id,
                row.key == key,
                row.fingerprint == fingerprint,
                row.status.is_(None),
            )
            .values(
                status=answer.status, headers=answer.headers, body=answer.body, locked_until=None
            )
        )

    async def release(self, user_id: UUID, key: str, fingerprint: str) -> None:
        row = idempotency_keys.c
        await self._session.execute(
            delete(idempotency_keys).where(
                row.user_id == user_id,
                row.key == key,
                row.fingerprint == fingerprint,
                row.status.is_(None),
            )
        )

    async def remove_expired(self, now: datetime, limit: int) -> int:
        row = idempotency_keys.c
        expired = select(row.user_id, row.key).where(row.expires_at <= now)
        key = tuple_(row.user_id, row.key)
        return await delete_batch(self._session, idempotency_keys, key, expired, limit)


class SqlIdentityUnitOfWork(SqlUnitOfWork):
    def __init__(self, session_factory: async_sessionmaker[AsyncSession]) -> None:
        super().__init__(session_factory)

    @property
    def users(self) -> SqlUsers:
        return SqlUsers(self.session)

    @property
    def usage(self) -> SqlUsage:
        return SqlUsage(self.session)

    @property
    def keys(self) -> SqlApiKeys:
        return SqlApiKeys(self.session)

    @property
    def sessions(self) -> SqlSessions:
        return SqlSessions(self.session)

    @property
    def idempotency(self) -> SqlIdempotencyKeys:
        return SqlIdempotencyKeys(self.session)
