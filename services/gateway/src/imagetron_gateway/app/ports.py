from __future__ import annotations

from typing import Protocol, TypeVar
from uuid import UUID

from pydantic import BaseModel

from imagetron_contracts.models.images import ProviderCallback
from imagetron_gateway.domain.identity import User
from imagetron_platform.ports import Transaction

R = TypeVar("R", bound=BaseModel)


class Users(Protocol):
    async def add(self, user: User, key_hash: str) -> None: ...
    async def by_key_hash(self, key_hash: str) -> User | None: ...
    async def by_id(self, user_id: UUID) -> User | None: ...
    async def any_admin(self) -> bool: ...


class IdentityUnitOfWork(Transaction, Protocol):
    @property
    def users(self) -> Users: ...


class ServiceClient(Protocol):
    """Request/reply to the service that owns the data (RpcClient in production)."""

    async def call(
        self,
        subject: str,
        request: BaseModel,
        result_type: type[R],
        *,
        timeout: float | None = None,  # noqa: ASYNC109 - forwarded to the NATS request
    ) -> R:
        """`timeout` overrides the client's default for calls known to be slow."""
        ...


class CallbackSink(Protocol):
    """Durably accepts a verified provider callback (JetStream in production); raises if it
    could not, so the provider is told to retry."""

    async def accept(self, callback: ProviderCallback, dedupe_id: str) -> None: ...
