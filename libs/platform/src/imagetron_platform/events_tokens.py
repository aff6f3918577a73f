"""Short-lived signed tokens that let a browser's EventSource (which cannot send headers)
open `GET /api/v1/events`. The gateway issues them; the notifier verifies them with the same
secret, so the notifier needs no user store."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time
from dataclasses import dataclass
from uuid import UUID

#: The cookie `POST /api/v1/events/token` also sets (path `/api/v1/events`, HttpOnly).
EVENTS_COOKIE = "imagetron_events"


#: Where a revoked API key is announced (`{"key_id", "user_id"}`, core NATS): the gateway
#: forgets it, and the notifier ends the streams opened with its tokens.
KEY_REVOKED_SUBJECT = "identity.keys.revoked"


@dataclass(frozen=True)
class EventsClaims:
    owner_id: UUID
    expires_at: int
    #: The API key the token was issued under: the token dies with it.
    key_id: UUID | None = None


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def issue_events_token(
    secret: str,
    owner_id: UUID,
    ttl_seconds: int,
    now: float | None = None,
    *,
    key_id: UUID | None = None,
) -> tuple[str, int]:
    expires_at = int((time.time() if now is None else now) + ttl_seconds)
    claims: dict[str, str | int] = {"sub": str(owner_id), "exp": expires_at}
    if key_id is not None:
        claims["kid"] = str(key_id)
    body = _b64(json.dumps(claims, separators=(",", ":")).encode())
    sig = _b64(hmac.new(secret.encode(), body.encode(), hashlib.sha256).digest())
    return f"{body}.{sig}", expires_at


def verify_events_token(secret: str, token: str, now: float | None = None) -> EventsClaims | None:
    """The claims of a valid, unexpired token; None for anything else."""
    if not token.isascii():
        return None
    body, _, sig = token.partition(".")
    expected = _b64(hmac.new(secret.encode(), body.encode(), hashlib.sha256).digest())
    if not sig or not hmac.compare_digest(expected.encode(), sig.encode()):
        return None
    try:
        claims = json.loads(_unb64(body))
        owner_id, expires_at = UUID(claims["sub"]), int(claims["exp"])
        key_id = UUID(claims["kid"]) if "kid" in claims else None
    except (ValueError, KeyError, TypeError):
        return None
    if expires_at < (time.time() if now is None else now):
        return None
    return EventsClaims(owner_id=owner_id, expires_at=expires_at, key_id=key_id)
