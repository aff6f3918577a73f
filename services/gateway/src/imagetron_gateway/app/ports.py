from __future__ import annotations

from types import TracebackType
from typing import Protocol, Self
from uuid import UUID

from imagetron_gateway.domain.identity import User


class Users(Protocol):
    async def add(self, user: User, key_hash: str) -> None: ...
    async def by_key_hash(self, key_hash: str) -> User | None: ...
    async def by_id(self, user_id: UUID) -> User | None: ...
    async def any_admin(self) -> bool: ...


class IdentityUnitOfWork(Protocol):
    @property
    def users(self) -> Users: ...

    async def __aenter__(self) -> Self: ...

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None: ...

    async def commit(self) -> None: ...
