"""Fakes of the gateway's own ports, and an app wired to them (no servers needed)."""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections.abc import AsyncIterator, Callable, MutableMapping
from dataclasses import dataclass, field, replace
from datetime import UTC, date, datetime
from typing import Any

import httpx
import pytest
from pydantic import BaseModel, SecretStr

from imagetron_contracts.models.images import ProviderCallback
from imagetron_gateway.adapters.identity import SqlIdentityUnitOfWork
from imagetron_gateway.adapters.notifier_streams import NotifierStreams
from imagetron_gateway.adapters.revocations import OpenStreams
from imagetron_gateway.adapters.shared_streams import SharedStreams
from imagetron_gateway.adapters.webhooks import webhook_verifiers
from imagetron_gateway.app.identity import Authenticator, create_user, ensure_bootstrap_admin
from imagetron_gateway.app.ports import Answer, KeyRecord
from imagetron_gateway.bootstrap import (
    SERVICE,
    api_app,
    daily_budgets,
    idempotent_requests,
    rate_limits,
)
from imagetron_gateway.context import GatewayContext, GatewayState
from imagetron_gateway.domain.identity import ApiKey, BrowserSession, RevokedKey, User, hash_api_key
from imagetron_gateway.migrations import upgrade
from imagetron_gateway.settings import GatewaySettings
from imagetron_platform.db import make_engine, make_session_factory
from imagetron_platform.errors import Conflict, ProblemError
from imagetron_platform.lifecycle import service_app
from imagetron_platform.testing import lifespan_client

# Standard Webhooks secret: `whsec_` + base64 of the signing key.
REPLICATE_WEBHOOK_SECRET = "whsec_cmVwbGljYXRlLXNpZ25pbmcta2V5LTMyLWJ5dGVzISE="


class FakeUsers:
    """Users and their keys in memory. `by_hash` maps every key ever issued to its user;
    whether a key works (not revoked, not expired, user enabled) is `usable`."""

    def __init__(self) -> None:
        self.by_hash: dict[str, User] = {}
        self.key_of: dict[str, ApiKey] = {}
        self.revoked: set[str] = set()
        self.disabled: set[uuid.UUID] = set()
        self.last_used: dict[uuid.UUID, datetime] = {}
        #: (user id, day, kind) → used, for FakeUsage.
        self.spent: dict[tuple[uuid.UUID, date, str], int] = {}
        #: request id → (user id, day, kind) it was charged on, for FakeUsage.
        self.charges: dict[str, tuple[uuid.UUID, date, str]] = {}
        #: (user id, key) → its row, for FakeIdempotencyKeys.
        self.idempotency_keys: dict[tuple[uuid.UUID, str], IdempotencyRow] = {}

    def usable(self, key_hash: str, now: datetime | None = None) -> tuple[User, ApiKey] | None:
        now = now or datetime.now(UTC)
        user, key = self.by_hash.get(key_hash), self.key_of.get(key_hash)
        if user is None or key is None or key_hash in self.revoked or user.id in self.disabled:
            return None
        if key.expires_at is not None and key.expires_at <= now:
            return None
        return user, key

    async def add(self, user: User, key_hash: str) -> None:
        if key_hash in self.by_hash:
            raise Conflict("This API key is already issued.")
        self.by_hash[key_hash] = user
        self.key_of[key_hash] = ApiKey(
            id=uuid.uuid4(),
            user_id=user.id,
            name="default",
            created_at=datetime.now(UTC),
            expires_at=None,
            last_used_at=None,
        )

    async def by_key_hash(self, key_hash: str) -> User | None:
        found = self.usable(key_hash)
        return None if found is None else found[0]

    async def by_id(self, user_id: uuid.UUID) -> User | None:
        return next((u for u in self.by_hash.values() if u.id == user_id), None)

    async def any_admin(self) -> bool:
        return any(u.is_admin for u in self.by_hash.values())

    async def known_key(self, key_hash: str) -> bool:
        return key_hash in self.by_hash

    async def all(self) -> list[tuple[User, bool]]:
        users = {u.id: u for u in self.by_hash.values()}
        return [(u, u.id in self.disabled) for u in users.values()]

    async def set_disabled(self, user_id: uuid.UUID, disabled_at: datetime | None) -> bool:
        if await self.by_id(user_id) is None:
            return False
        if disabled_at is None:
            self.disabled.discard(user_id)
        else:
            self.disabled.add(user_id)
        return True

    async def remove(self, user_id: uuid.UUID) -> bool:
        mine = [h for h, u in self.by_hash.items() if u.id == user_id]
        for key_hash in mine:
            del self.by_hash[key_hash]
            del self.key_of[key_hash]
        return bool(mine)


class FakeApiKeys:
    def __init__(self, users: FakeUsers, sessions: FakeSessions) -> None:
        self.users = users
        self.sessions = sessions

    async def add(self, key: ApiKey, key_hash: str) -> None:
        user = await self.users.by_id(key.user_id)
        assert user is not None
        self.users.by_hash[key_hash] = user
        self.users.key_of[key_hash] = key

    async def active(self, key_hash: str, now: datetime) -> tuple[User, ApiKey] | None:
        return self.users.usable(key_hash, now)

    async def active_by_id(self, key_id: uuid.UUID, now: datetime) -> tuple[User, ApiKey] | None:
        key_hash = self._hash(key_id)
        return None if key_hash is None else self.users.usable(key_hash, now)

    def _hash(self, key_id: uuid.UUID) -> str | None:
        return next((h for h, k in self.users.key_of.items() if k.id == key_id), None)

    async def of_user(self, user_id: uuid.UUID, now: datetime) -> list[ApiKey]:
        keys = [
            k
            for h, k in self.users.key_of.items()
            if k.user_id == user_id
            and h not in self.users.revoked
            and (k.expires_at is None or k.expires_at > now)
        ]
        return sorted(keys, key=lambda k: k.created_at, reverse=True)

    async def rename(self, user_id: uuid.UUID, key_id: uuid.UUID, name: str) -> ApiKey | None:
        key_hash = self._hash(key_id)
        key = self.users.key_of.get(key_hash) if key_hash else None
        if key is None or key.user_id != user_id or key_hash in self.users.revoked:
            return None
        self.users.key_of[key_hash] = renamed = replace(key, name=name)  # type: ignore[index]
        return renamed

    async def revoke(self, user_id: uuid.UUID, key_id: uuid.UUID, now: datetime) -> str | None:
        key_hash = self._hash(key_id)
        if key_hash is None or key_hash in self.users.revoked:
            return None
        if self.users.key_of[key_hash].user_id != user_id:
            return None
        self.users.revoked.add(key_hash)
        for token_hash in [t for t, s in self.sessions.by_hash.items() if s.key_hash == key_hash]:
            del self.sessions.by_hash[token_hash]
        return key_hash

    async def revoke_all(self, user_id: uuid.UUID, now: datetime) -> list[tuple[uuid.UUID, str]]:
        revoked = []
        for key in await self.of_user(user_id, now):
            key_hash = await self.revoke(user_id, key.id, now)
            if key_hash is not None:
                revoked.append((key.id, key_hash))
        return revoked

    async def record_use(self, last_used: dict[uuid.UUID, datetime]) -> None:
        self.users.last_used.update(last_used)


class FakeUsage:
    """The SQL repository's rules in memory (test_budgets.py runs both)."""

    def __init__(self, users: FakeUsers) -> None:
        self.spent = users.spent
        self.charges = users.charges

    async def spend(
        self, user_id: uuid.UUID, day: date, kind: str, limit: int, request_id: str | None = None
    ) -> bool:
        if request_id is not None and request_id in self.charges:
            return True
        used = self.spent.get((user_id, day, kind), 0)
        if used >= limit:
            return False
        self.spent[(user_id, day, kind)] = used + 1
        if request_id is not None:
            self.charges[request_id] = (user_id, day, kind)
        return True

    async def give_back(
        self, user_id: uuid.UUID, day: date, kind: str, request_id: str | None = None
    ) -> None:
        if request_id is not None:
            charge = self.charges.get(request_id)
            if charge is None or charge[0] != user_id:
                return
            del self.charges[request_id]
            key = charge
        else:
            key = (user_id, day, kind)
        self.spent[key] = max(0, self.spent.get(key, 0) - 1)

    async def of_day(self, user_id: uuid.UUID, day: date) -> dict[str, int]:
        return {k: n for (u, d, k), n in self.spent.items() if u == user_id and d == day}

    async def remove_charges_before(self, day: date, limit: int) -> int:
        old = [r for r, (_, charged, _) in self.charges.items() if charged < day][:limit]
        for request_id in old:
            del self.charges[request_id]
        return len(old)

    async def remove_counts_before(self, day: date, limit: int) -> int:
        old = [key for key in self.spent if key[1] < day][:limit]
        for key in old:
            del self.spent[key]
        return len(old)


@dataclass
class IdempotencyRow:
    fingerprint: str
    expires_at: datetime
    locked_until: datetime | None
    answer: Answer | None = None


class FakeIdempotencyKeys:
    """The SQL repository's rules in memory (test_idempotency.py runs both)."""

    def __init__(self, users: FakeUsers) -> None:
        self.rows = users.idempotency_keys

    async def claim(
        self,
        user_id: uuid.UUID,
        key: str,
        fingerprint: str,
        now: datetime,
        expires_at: datetime,
        locked_until: datetime,
    ) -> bool:
        row = self.rows.get((user_id, key))
        abandoned = (
            row is not None
            and row.answer is None
            and row.locked_until is not None
            and row.locked_until <= now
            and row.fingerprint == fingerprint
        )
        if row is None or row.expires_at <= now or abandoned:
            self.rows[(user_id, key)] = IdempotencyRow(fingerprint, expires_at, locked_until)
            return True
        return False

    async def get(self, user_id: uuid.UUID, key: str, now: datetime) -> KeyRecord | None:
        row = self.rows.get((user_id, key))
        if row is None or row.expires_at <= now:
            return None
        return KeyRecord(row.fingerprint, row.answer)

    async def complete(
        self, user_id: uuid.UUID, key: str, fingerprint: str, answer: Answer
    ) -> None:
        row = self.rows.get((user_id, key))
        if row is not None and row.fingerprint == fingerprint and row.answer is None:
            row.answer, row.locked_until = answer, None

    async def release(self, user_id: uuid.UUID, key: str, fingerprint: str) -> None:
        row = self.rows.get((user_id, key))
        if row is not None and row.fingerprint == fingerprint and row.answer is None:
            del self.rows[(user_id, key)]

    async def remove_expired(self, now: datetime, limit: int) -> int:
        expired = [k for k, row in self.rows.items() if row.expires_at <= now][:limit]
        for k in expired:
            del self.rows[k]
        return len(expired)


@dataclass
class FakeRevocations:
    announced: list[RevokedKey] = field(default_factory=list)

    async def announce(self, revoked: RevokedKey) -> None:
        self.announced.append(revoked)


class FakeSessions:
    """Sessions held in memory; a session whose key is no longer in `users` is no session,
    as the SQL join makes it."""

    def __init__(self, users: FakeUsers) -> None:
        self.users = users
        self.by_hash: dict[str, BrowserSession] = {}

    async def add(self, session: BrowserSession) -> None:
        self.by_hash[session.token_hash] = session

    async def active(self, token_hash: str, now: datetime) -> tuple[User, BrowserSession] | None:
        session = self.by_hash.get(token_hash)
        if session is None or session.expires_at <= now:
            return None
        found = self.users.usable(session.key_hash, now)
        return None if found is None else (found[0], replace(session, key_id=found[1].id))

    async def remove(self, token_hash: str) -> None:
        self.by_hash.pop(token_hash, None)

    async def keep_newest(self, user_id: uuid.UUID, count: int) -> None:
        mine = sorted(
            (s for s in self.by_hash.values() if s.user_id == user_id),
            key=lambda s: s.created_at,
            reverse=True,
        )
        for old in mine[count:]:
            del self.by_hash[old.token_hash]

    async def remove_expired(self, now: datetime, limit: int) -> int:
        expired = [h for h, s in self.by_hash.items() if s.expires_at <= now][:limit]
        for token_hash in expired:
            del self.by_hash[token_hash]
        return len(expired)


class FakeIdentityUoW:
    def __init__(self, users: FakeUsers, sessions: FakeSessions | None = None) -> None:
        self.users = users
        self.sessions = sessions or FakeSessions(users)
        self.keys = FakeApiKeys(users, self.sessions)
        self.usage = FakeUsage(users)
        self.idempotency = FakeIdempotencyKeys(users)
        self.commits = 0

    async def __aenter__(self) -> FakeIdentityUoW:
        return self

    async def __aexit__(self, *exc: object) -> None:
        return None

    async def commit(self) -> None:
        self.commits += 1


@dataclass
class FakeServices:
    """Answers RPC calls from a table of subject → result or ProblemError."""

    answers: dict[str, Any] = field(default_factory=dict)
    calls: list[tuple[str, BaseModel]] = field(default_factory=list)
    #: The timeout each subject was last called with (None: the client's default).
    timeouts: dict[str, float | None] = field(default_factory=dict)

    async def call(
        self,
        subject: str,
        request: BaseModel,
        result_type: type[Any],
        *,
        timeout: float | None = None,
    ) -> Any:
        self.calls.append((subject, request))
        self.timeouts[subject] = timeout
        answer = self.answers[subject]
        if isinstance(answer, ProblemError):
            raise answer
        return result_type.model_validate(answer)


@dataclass
class FakeCallbacks:
    accepted: list[tuple[ProviderCallback, str]] = field(default_factory=list)
    fail: bool = False

    async def accept(self, callback: ProviderCallback, dedupe_id: str) -> None:
        if self.fail:
            raise ConnectionError("nats is down")
        self.accepted.append((callback, dedupe_id))


def make_user(name: str, *, is_admin: bool = False) -> User:
    return User(id=uuid.uuid4(), name=name, is_admin=is_admin, created_at=datetime.now(UTC))


@dataclass
class Gateway:
    client: httpx.AsyncClient
    settings: GatewaySettings
    users: FakeUsers
    sessions: FakeSessions
    revocations: FakeRevocations
    services: FakeServices
    callbacks: FakeCallbacks
    keys: dict[str, str]  # user name → api key
    people: dict[str, User]
    #: The lifespan state requests see: replace `context` to change what they get.
    state: MutableMapping[str, Any]

    def auth(self, name: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.keys[name]}"}


def prompt_answer(owner_id: uuid.UUID, text: str = "a pear", **fields: Any) -> dict[str, Any]:
    """A prompt as the prompts service answers it (`fields` replace its values)."""
    now = datetime.now(UTC).isoformat()
    return {
        "id": str(uuid.uuid4()),
        "owner_id": str(owner_id),
        "chat_id": None,
        "text": text,
        "title": None,
        "status": "new",
        "generation_state": "idle",
        "active_tasks": 0,
        "completed_tasks": 0,
        "failed_tasks": 0,
        "findings": [],
        "created_at": now,
        "updated_at": now,
        **fields,
    }


@pytest.fixture
def make_prompt() -> Callable[..., dict[str, Any]]:
    return prompt_answer


@pytest.fixture
def fake_identity_uow() -> Callable[[], FakeIdentityUoW]:
    """A factory of fake identity units of work sharing one store."""
    users = FakeUsers()
    return lambda: FakeIdentityUoW(users)


@pytest.fixture(params=["fake", "sql"])
async def identity_store(
    request: pytest.FixtureRequest,
) -> AsyncIterator[tuple[Callable[[], Any], uuid.UUID]]:
    """A unit-of-work factory and a user id it knows: the in-memory fakes, then the real
    identity schema (the same tests run on both, so the fakes keep the SQL's rules)."""
    if request.param == "fake":
        yield request.getfixturevalue("fake_identity_uow"), uuid.uuid4()
        return
    dsn = request.getfixturevalue("postgres_dsn")
    await asyncio.to_thread(upgrade, dsn)
    engine = make_engine(dsn)
    factory = make_session_factory(engine)

    def uow() -> SqlIdentityUnitOfWork:
        return SqlIdentityUnitOfWork(factory)

    admin_key = "itk_identity-store-admin"
    await ensure_bootstrap_admin(uow(), "admin", admin_key)
    async with uow() as unit:
        admin = await unit.users.by_key_hash(hash_api_key(admin_key))
    user, _ = await create_user(uow(), admin, f"user-{uuid.uuid4().hex[:8]}", is_admin=False)
    try:
        yield uow, user.id
    finally:
        await engine.dispose()


@pytest.fixture
async def gateway() -> AsyncIterator[Gateway]:
    settings = GatewaySettings(
        webhook_secret=SecretStr("s3cret"),
        webhook_token_key=SecretStr("token-key"),
        replicate_webhook_secret=SecretStr(REPLICATE_WEBHOOK_SECRET),
        events_token_secret=SecretStr("events-secret"),
        webhook_max_bytes=4096,
        rate_limit_per_key=50,
        rate_limit_per_address=20,
        llm_calls_per_day=5,
        generations_per_day=2,
        rate_limit_pictures_per_key=60,
    )
    users = FakeUsers()
    sessions = FakeSessions(users)
    revocations = FakeRevocations()
    people = {"admin": make_user("admin", is_admin=True), "ada": make_user("ada")}
    keys = {name: f"itk_{name}-key" for name in people}
    for name, user in people.items():
        await users.add(user, hash_api_key(keys[name]))
    services, callbacks = FakeServices(), FakeCallbacks()

    streams = OpenStreams()

    @contextlib.asynccontextmanager
    async def fake_ports() -> AsyncIterator[GatewayState]:
        async with httpx.AsyncClient() as http:
            yield GatewayState(
                context=GatewayContext(
                    settings=settings,
                    rpc=services,
                    callbacks=callbacks,
                    authenticator=Authenticator(lambda: FakeIdentityUoW(users), cache_seconds=0),
                    identity_uow=lambda: FakeIdentityUoW(users, sessions),
                    revocations=revocations,
                    streams=streams,
                    http=http,
                    notifier=NotifierStreams(connect_timeout=5.0),
                    shared_streams=SharedStreams(streams),
                    rate_limits=rate_limits(settings),
                    budgets=daily_budgets(settings, lambda: FakeIdentityUoW(users, sessions)),
                    idempotency=idempotent_requests(
                        settings, lambda: FakeIdentityUoW(users, sessions)
                    ),
                    webhooks=webhook_verifiers(settings),
                )
            )

    app = api_app(service_app(SERVICE, title="test gateway", lifespan=fake_ports, readiness={}))
    async with lifespan_client(app, base_url="http://gateway") as running:
        yield Gateway(
            running.client,
            settings,
            users,
            sessions,
            revocations,
            services,
            callbacks,
            keys,
            people,
            running.state,
        )
