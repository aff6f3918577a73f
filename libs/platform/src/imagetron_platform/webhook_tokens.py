"""The unguessable per-task token in a provider's callback URL.

Providers such as GoAPI sign nothing: they echo a shared secret. The images service puts
`token = HMAC(key, provider:task_id)` in the callback URL it gives the provider, and the
gateway recomputes it, so a leaked shared secret alone cannot forge callbacks for a task
and neither side needs to store tokens.
"""

from __future__ import annotations

import base64
import functools
import hashlib
import hmac
from urllib.parse import urlencode
from uuid import UUID


#: The gateway checks a callback's token, then looks for it in the body; a provider sends
#: several callbacks per task: each is computed once.
@functools.lru_cache(maxsize=4096)
def webhook_token(key: str, provider: str, task_id: UUID) -> str:
    digest = hmac.new(key.encode(), f"{provider}:{task_id}".encode(), hashlib.sha256).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode()


def webhook_url(base_url: str, key: str, provider: str, task_id: UUID) -> str:
    """The callback URL a provider is given for one task: the gateway's public
    `/webhooks/<provider>/<task id>` with the task's token."""
    query = urlencode({"token": webhook_token(key, provider, task_id)})
    return f"{base_url.rstrip('/')}/webhooks/{provider}/{task_id}?{query}"


def verify_webhook_token(key: str, provider: str, task_id: UUID, token: str | None) -> bool:
    """A missing or malformed token (any text at all) is simply not valid."""
    return secrets_match(webhook_token(key, provider, task_id), token)


def secrets_match(expected: str, given: str | None) -> bool:
    """Constant-time comparison of a shared secret; a missing one never matches. Compared
    as UTF-8 bytes: `compare_digest` refuses non-ASCII text instead of answering False."""
    return given is not None and hmac.compare_digest(
        expected.encode(), given.encode("utf-8", "surrogateescape")
    )
