from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any, Literal, Protocol, TypeVar
from uuid import UUID

from pydantic import BaseModel

from imagetron_contracts.models.images import ProviderCallback
from imagetron_gateway.domain.identity import ApiKey, BrowserSession, RevokedKey, User
from imagetron_platform.ports import Transaction

R = TypeVar("R", bound=BaseModel)


class Users(Protocol):
    async def add(self, user: User, key_hash: str) -> None:
        """Raises `Conflict` when the key is already issued (to anyone)."""
        ...

    async def by_key_hash(self, key_hash: str) -> User | None: ...
    async def by_id(self, user_id: UUID) -> User | None: ...
    async def any_admin(self) -> bool: ...
    async def known_key(self, key_hash: str) -> bool:
        """Whether the key was ever issued, revoked or not."""
        ...

    async def all(self) -> list[tuple[User, bool]]:
        """Every user with whether it is disabled, oldest first."""
        ...

    async def set_disabled(self, user_id: UUID, disabled_at: datetime | None) -> bool: ...
    async def remove(self, user_id: UUID) -> bool: ...


class ApiKeys(Protocol):
    async def add(self, key: ApiKey, key_hash: str) -> None: ...
    async def active(self, key_hash: str, now: datetime) -> tuple[User, ApiKey] | None:
        """The key and its user, if the key is neither revoked nor expired and the user is
        not disabled."""
        ...

    async def active_by_id(self, key_id: UUID, now: datetime) -> tuple[User, ApiKey] | None: ...
    async def of_user(self, user_id: UUID, now: datetime) -> list[ApiKey]:
        """The user's usable keys, newest first."""
        ...

    async def rename(self, user_id: UUID, key_id: UUID, name: str) -> ApiKey | None: ...
    async def revoke(self, user_id: UUID, key_id: UUID, now: datetime) -> str | None:
        """Revoke the key and end its sessions; its hash, or None if there was no such
        usable key of that user."""
        ...

    async def revoke_all(self, user_id: UUID, now: datetime) -> list[tuple[UUID, str]]: ...
    async def record_use(self, last_used: dict[UUID, datetime]) -> None: ...


class Usage(Protocol):
    async def spend(
        self, user_id: UUID, day: date, kind: str, limit: int, request_id: str | None = None
    ) -> bool:
        """Count one more, atomically, unless `limit` is reached; whether it is counted.
        With a request id: once per request id, so true without counting again when that
        request was charged before (on any day whose charges are kept), whatever is left."""
        ...

    async def give_back(
        self, user_id: UUID, day: date, kind: str, request_id: str | None = None
    ) -> None:
        """Count one less of `day`'s `kind`; with a request id, remove that request's charge
        instead (on the day it was counted), if it is still there: at most once."""
        ...

    async def of_day(self, user_id: UUID, day: date) -> dict[str, int]: ...
    async def remove_charges_before(self, day: date, limit: int) -> int:
        """Forget up to `limit` requests' charges counted before `day`."""
        ...

    async def remove_counts_before(self, day: date, limit: int) -> int:
        """Forget up to `limit` counts (a user's day of one kind) of days before `day`."""
        ...


class Sessions(Protocol):
    async def add(self, session: BrowserSession) -> None: ...
    async def active(self, token_hash: str, now: datetime) -> tuple[User, BrowserSession] | None:
        """The session and its user, if it has not expired and its API key still exists."""
        ...

    async def remove(self, token_hash: str) -> None: ...
    async def keep_newest(self, user_id: UUID, count: int) -> None:
        """End the user's oldest sessions beyond the newest `count`."""
        ...

    async def remove_expired(self, now: datetime, limit: int) -> int: ...


@dataclass(frozen=True)
class Answer:
    """An HTTP answer as it was sent: what an Idempotency-Key replays."""

    status: int
    headers: dict[str, str]
    body: bytes


@dataclass(frozen=True)
class KeyRecord:
    """An Idempotency-Key in use: the request it was first sent with (its fingerprint),
    and that request's answer, or None while it is being answered."""

    fingerprint: str
    answer: Answer | None


class IdempotencyKeys(Protocol):
    async def claim(
        self,
        user_id: UUID,
        key: str,
        fingerprint: str,
        now: datetime,
        expires_at: datetime,
        locked_until: datetime,
    ) -> bool:
        """Take the key for a request being answered now: true when it is new, expired, or
        held past `locked_until` by a request with the same fingerprint (abandoned)."""
        ...

    async def get(self, user_id: UUID, key: str, now: datetime) -> KeyRecord | None: ...
    async def complete(self, user_id: UUID, key: str, fingerprint: str, answer: Answer) -> None: ...

    async def release(self, user_id: UUID, key: str, fingerprint: str) -> None:
        """Forget a key whose request was not answered (failed): it may be sent again."""
        ...

    async def remove_expired(self, now: datetime, limit: int) -> int: ...


class IdentityUnitOfWork(Transaction, Protocol):
    @property
    def users(self) -> Users: ...
    @property
    def sessions(self) -> Sessions: ...
    @property
    def keys(self) -> ApiKeys: ...
    @property
    def usage(self) -> Usage: ...
    @property
    def idempotency(self) -> IdempotencyKeys: ...


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


@dataclass(frozen=True)
class WebhookParameter:
    """A credential a provider's callbacks carry outside the body, as the contract
    documents it."""

    location: Literal["query", "header"]
    name: str


@dataclass(frozen=True)
class WebhookRequest:
    """A provider callback as a verifier sees it: where it was sent and what came with it
    (headers are looked up case-insensitively)."""

    provider: str
    task_id: UUID
    headers: Mapping[str, str]
    query: Mapping[str, str]


class WebhookVerifier(Protocol):
    """How one provider's callbacks prove where they come from. Each check raises the
    platform's `Unauthorized` (a plain 401) when it fails, whatever the reason: a missing,
    malformed, non-ASCII or wrong credential is simply not valid."""

    def check(self, request: WebhookRequest) -> None:
        """The credentials that need no body, before the body is read."""
        ...

    def verify(self, request: WebhookRequest, body: bytes) -> str:
        """Whatever covers the body (a signature), then the delivery's id: the same for
        the provider's retries of one delivery, so it is stored once."""
        ...

    def scrub(self, request: WebhookRequest, body: dict[str, Any]) -> dict[str, Any]:
        """The body as it may be stored and published: without any credential of ours the
        provider echoed in it (a secret, a callback URL with the task token)."""
        ...


class KeyRevocations(Protocol):
    """Tells every gateway and notifier replica that a key stopped working (NATS)."""

    async def announce(self, revoked: RevokedKey) -> None: ...
