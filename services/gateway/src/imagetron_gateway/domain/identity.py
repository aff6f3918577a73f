"""Users, their API keys and their browser sessions. A key is shown once; only its SHA-256
is kept (keys are 256 random bits, so a fast hash is enough: there is nothing to
brute-force). Sessions are kept the same way."""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
from dataclasses import dataclass
from datetime import datetime
from uuid import UUID

KEY_PREFIX = "itk_"


@dataclass(frozen=True)
class User:
    id: UUID
    name: str
    is_admin: bool
    created_at: datetime


@dataclass(frozen=True)
class ApiKey:
    """One of a user's API keys (never the key itself: it is shown once, at creation)."""

    id: UUID
    user_id: UUID
    name: str
    created_at: datetime
    expires_at: datetime | None
    last_used_at: datetime | None


@dataclass(frozen=True)
class Caller:
    """Who made a request: the user, and the API key that vouched for it (directly, or
    through a browser session or an events token opened with it)."""

    user: User
    key_id: UUID | None


@dataclass(frozen=True)
class RevokedKey:
    """Announced to every gateway and notifier replica the moment a key stops working (by
    id: its hash never travels)."""

    key_id: UUID
    user_id: UUID


@dataclass(frozen=True)
class BrowserSession:
    """A signed-in browser. It lives until `expires_at`, sign-out, or the end of the API
    key it was opened with (`key_hash`)."""

    token_hash: str
    user_id: UUID
    key_hash: str
    created_at: datetime
    expires_at: datetime
    #: The id of the key (`key_hash`), when read back from storage.
    key_id: UUID | None = None


def new_api_key() -> str:
    return KEY_PREFIX + secrets.token_urlsafe(32)


def hash_api_key(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


def new_session_token() -> str:
    return secrets.token_urlsafe(32)


#: Session tokens are as random as API keys: the same hash suits them.
hash_session_token = hash_api_key


def csrf_token_for(session_token: str) -> str:
    """The session's CSRF token, derived from it (nothing more to store): a page reads it
    from the API and echoes it in `X-CSRF-Token`; another site can neither read the cookie
    nor the API's answers, so it cannot produce it."""
    digest = hmac.new(session_token.encode(), b"imagetron-csrf", hashlib.sha256).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode()


def csrf_token_matches(session_token: str, presented: str | None) -> bool:
    return presented is not None and hmac.compare_digest(
        csrf_token_for(session_token).encode(), presented.encode()
    )
