"""Fakes of the gateway's own ports, and an app wired to them (no servers needed)."""

from __future__ import annotations

import contextlib
import uuid
from collections.abc import AsyncIterator, MutableMapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest
from pydantic import BaseModel, SecretStr

from imagetron_contracts.models.images import ProviderCallback
from imagetron_gateway.adapters.webhooks import webhook_verifiers
from imagetron_gateway.app.identity import Authenticator
from imagetron_gateway.bootstrap import SERVICE, api_app, rate_limits
from imagetron_gateway.context import GatewayContext, GatewayState
from imagetron_gateway.domain.identity import BrowserSession, User, hash_api_key
from imagetron_gateway.settings import GatewaySettings
from imagetron_platform.errors import ProblemError
from imagetron_platform.lifecycle import service_app
from imagetron_platform.testing import lifespan_client

# Standard Webhooks secret: `whsec_` + base64 of the signing key.
REPLICATE_WEBHOOK_SECRET = "whsec_cmVwbGljYXRlLXNpZ25pbmcta2V5LTMyLWJ5dGVzISE="


class FakeUsers:
    def __init__(self) -> None:
        self.by_hash: dict[str, User] = {}

    async def add(self, user: User, key_hash: str) -> None:
        self.by_hash[key_hash] = user

    async def by_key_hash(self, key_hash: str) -> User | None:
        return self.by_hash.get(key_hash)

    async def by_id(self, user_id: uuid.UUID) -> User | None:
        return next((u for u in self.by_hash.values() if u.id == user_id), None)

    async def any_admin(self) -> bool:
        return any(u.is_admin for u in self.by_hash.values())


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
        user = self.users.by_hash.get(session.key_hash)
        return None if user is None else (user, session)

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
    services: FakeServices
    callbacks: FakeCallbacks
    keys: dict[str, str]  # user name → api key
    people: dict[str, User]
    #: The lifespan state requests see: replace `context` to change what they get.
    state: MutableMapping[str, Any]

    def auth(self, name: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.keys[name]}"}


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
        rate_limit_pictures_per_key=60,
    )
    users = FakeUsers()
    sessions = FakeSessions(users)
    people = {"admin": make_user("admin", is_admin=True), "ada": make_user("ada")}
    keys = {name: f"itk_{name}-key" for name in people}
    for name, user in people.items():
        await users.add(user, hash_api_key(keys[name]))
    services, callbacks = FakeServices(), FakeCallbacks()

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
                    http=http,
                    rate_limits=rate_limits(settings),
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
            services,
            callbacks,
            keys,
            people,
            running.state,
        )
