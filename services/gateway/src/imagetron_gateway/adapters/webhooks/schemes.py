"""The ways providers authenticate their callbacks, for the verifiers to build on.

Every scheme also checks our per-task token (in the callback URL the images service gave
the provider), which binds a callback to the task it claims to be about: a signature
covers the body, not the task id in the URL, and a shared secret is the same for every
task. Every comparison is constant-time on bytes.

Providers echo what we gave them (GoAPI its `webhook_config` with our secret and callback
URL, midjourney-proxy its `notifyHook`): `scrub` takes every credential of ours out of a
body before it is stored or published."""

from __future__ import annotations

import base64
import binascii
import functools
import hashlib
import logging
import time
from collections.abc import Iterable, Sequence
from typing import Any, ClassVar
from urllib.parse import quote, quote_plus

from Crypto.PublicKey.ECC import EccKey
from Crypto.Signature import eddsa
from standardwebhooks import Webhook

from imagetron_gateway.app.ports import WebhookParameter, WebhookRequest
from imagetron_platform.errors import Unauthorized
from imagetron_platform.webhook_tokens import secrets_match, verify_webhook_token, webhook_token

log = logging.getLogger(__name__)

TOKEN = WebhookParameter("query", "token")
REDACTED = "[redacted]"
#: A credential this long is looked for inside strings (a URL that carries it); a shorter
#: one only as a whole value, so that it cannot blank out ordinary words.
_FOUND_INSIDE_FROM = 16
#: How far a signed timestamp may be from our clock (Standard Webhooks' and fal's rule).
TIMESTAMP_TOLERANCE_SECONDS = 300


def reject(request: WebhookRequest, why: str) -> Unauthorized:
    """The same plain 401 whatever failed; the reason goes to our log only."""
    log.warning(
        "rejected %s webhook: %s", request.provider, why, extra={"task_id": str(request.task_id)}
    )
    return Unauthorized("The webhook's credentials are not valid.")


class TaskTokenVerifier:
    """The per-task token every scheme checks first, before the body is read."""

    provider: ClassVar[str]
    parameters: ClassVar[tuple[WebhookParameter, ...]] = (TOKEN,)

    def __init__(self, *, token_key: str) -> None:
        self._token_key = token_key

    def check(self, request: WebhookRequest) -> None:
        token = request.query.get(TOKEN.name)
        if not verify_webhook_token(self._token_key, self.provider, request.task_id, token):
            raise reject(request, "wrong or missing task token")

    def scrub(self, request: WebhookRequest, body: dict[str, Any]) -> dict[str, Any]:
        return without_credentials(body, self.credentials(request))

    def credentials(self, request: WebhookRequest) -> tuple[str, ...]:
        """What of ours the provider could echo: the task's token (in its callback URL)."""
        return (webhook_token(self._token_key, self.provider, request.task_id),)


class UnsignedVerifier(TaskTokenVerifier):
    """Providers that sign nothing: the per-task token is the credential. The message id is
    the body's hash: a retried delivery is stored once, a new state (a new body) is a new
    message."""

    def verify(self, request: WebhookRequest, body: bytes) -> str:
        return f"{self.provider}:{hashlib.sha256(body).hexdigest()}"


class SharedSecretVerifier(UnsignedVerifier):
    """Providers that sign nothing and send back a secret we gave them (in a header, or in
    the callback URL), next to the task token."""

    #: Where the provider sends the shared secret back.
    secret: ClassVar[WebhookParameter]

    def __init__(self, *, token_key: str, shared_secret: str) -> None:
        super().__init__(token_key=token_key)
        self._shared_secret = shared_secret

    def check(self, request: WebhookRequest) -> None:
        source = request.headers if self.secret.location == "header" else request.query
        secret_ok = secrets_match(self._shared_secret, source.get(self.secret.name))
        super().check(request)
        if not secret_ok:
            raise reject(request, "wrong or missing shared secret")

    def credentials(self, request: WebhookRequest) -> tuple[str, ...]:
        return (*super().credentials(request), self._shared_secret)


def without_credentials(body: dict[str, Any], credentials: Sequence[str]) -> dict[str, Any]:
    """`body` with every string that carries one of `credentials` (as it is, or encoded
    for a URL) replaced by `REDACTED`. Bodies are bounded in depth before they get here."""
    forms = _forms(tuple(credentials))

    def carries(text: str) -> bool:
        return any(
            text == form or (len(form) >= _FOUND_INSIDE_FROM and form in text) for form in forms
        )

    def scrubbed(value: Any) -> Any:
        if isinstance(value, str):
            return REDACTED if carries(value) else value
        if isinstance(value, dict):
            return {key: scrubbed(item) for key, item in value.items()}
        if isinstance(value, list):
            return [scrubbed(item) for item in value]
        return value

    return {key: scrubbed(value) for key, value in body.items()}


@functools.lru_cache(maxsize=1024)
def _forms(credentials: tuple[str, ...]) -> frozenset[str]:
    """Each credential as it is and encoded for a URL (computed once per task)."""
    return frozenset(
        form
        for credential in credentials
        if credential
        for form in (credential, quote(credential, safe=""), quote_plus(credential))
    )


class StandardWebhooksVerifier(TaskTokenVerifier):
    """Standard Webhooks: HMAC-SHA256 of `webhook-id.webhook-timestamp.body` with a
    `whsec_` secret, any of the space-separated `v1,` signatures may match (key rotation),
    the timestamp within 5 minutes. `webhook-id` stays the same across retries: it is the
    message id. Without a signing secret every callback is refused."""

    parameters: ClassVar[tuple[WebhookParameter, ...]] = (
        TOKEN,
        WebhookParameter("header", "webhook-id"),
        WebhookParameter("header", "webhook-timestamp"),
        WebhookParameter("header", "webhook-signature"),
    )

    def __init__(self, *, token_key: str, signing_secret: str | None) -> None:
        super().__init__(token_key=token_key)
        self._webhook = Webhook(signing_secret) if signing_secret else None

    def check(self, request: WebhookRequest) -> None:
        super().check(request)
        if self._webhook is None:
            raise reject(request, "no signing secret is configured")
        if not (request.headers.get("webhook-id") and request.headers.get("webhook-timestamp")):
            raise reject(request, "no webhook-id or webhook-timestamp")

    def verify(self, request: WebhookRequest, body: bytes) -> str:
        assert self._webhook is not None  # check() ran first
        names = ("webhook-id", "webhook-timestamp", "webhook-signature")
        headers = {name: request.headers.get(name, "") for name in names}
        try:
            self._webhook.verify(body, headers, json_parse=False)
        except Exception as exc:
            # The library raises more than its own error on malformed headers or bodies;
            # every failure means the same here.
            raise reject(request, f"signature: {exc!r}") from exc
        return f"{self.provider}:{headers['webhook-id']}"


class Ed25519Verifier(TaskTokenVerifier):
    """Providers that sign with Ed25519 (fal.ai's scheme): a subclass says which headers
    carry the signature, the timestamp and the delivery id, and which bytes are signed;
    the provider's public keys (raw 32 bytes each, several during a rotation) are
    configured. The timestamp must be within 5 minutes."""

    signature_header: ClassVar[str]
    timestamp_header: ClassVar[str]
    id_header: ClassVar[str]

    def __init__(self, *, token_key: str, public_keys: Iterable[bytes]) -> None:
        super().__init__(token_key=token_key)
        self._keys = [eddsa.import_public_key(key) for key in public_keys]

    def signed_message(self, request: WebhookRequest, body: bytes) -> bytes:
        raise NotImplementedError

    def check(self, request: WebhookRequest) -> None:
        super().check(request)
        if not self._keys:
            raise reject(request, "no public key is configured")
        timestamp = request.headers.get(self.timestamp_header, "")
        if not (timestamp.isascii() and timestamp.isdigit()):
            raise reject(request, "no timestamp")
        if abs(time.time() - int(timestamp)) > TIMESTAMP_TOLERANCE_SECONDS:
            raise reject(request, "timestamp too far from now")
        if not request.headers.get(self.id_header):
            raise reject(request, "no delivery id")

    def verify(self, request: WebhookRequest, body: bytes) -> str:
        signature = _hex_or_base64(request.headers.get(self.signature_header, ""))
        message = self.signed_message(request, body)
        if signature is None or not _any_key_signed(self._keys, message, signature):
            raise reject(request, "signature")
        return f"{self.provider}:{request.headers[self.id_header]}"


def _any_key_signed(keys: Sequence[EccKey], message: bytes, signature: bytes) -> bool:
    for key in keys:
        try:
            eddsa.new(key, "rfc8032").verify(message, signature)
        except ValueError:
            continue
        return True
    return False


def _hex_or_base64(text: str) -> bytes | None:
    """An Ed25519 signature (64 bytes) as hex or base64, or None."""
    if not text.isascii():
        return None
    for decode in (bytes.fromhex, base64.b64decode):
        try:
            raw = decode(text)
        except (ValueError, binascii.Error):
            continue
        if len(raw) == 64:
            return raw
    return None
