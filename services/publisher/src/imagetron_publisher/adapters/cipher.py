"""Agency passwords encrypted at rest with Fernet (AES-128-CBC + HMAC-SHA256, from
`cryptography`). The key is derived from a secret in the settings, so any long random
string works; several secrets (newest first) let an operator rotate the key."""

from __future__ import annotations

import base64
import hashlib
from collections.abc import Sequence

from cryptography.fernet import Fernet, InvalidToken, MultiFernet

from imagetron_publisher.app.ports import CredentialsUnreadable


def _fernet(secret: str) -> Fernet:
    # A Fernet key is 32 url-safe base64 bytes; SHA-256 of the secret gives exactly that.
    return Fernet(base64.urlsafe_b64encode(hashlib.sha256(secret.encode()).digest()))


class FernetCipher:
    """The CredentialCipher port. Encrypts with the first secret, decrypts with any."""

    def __init__(self, secrets: Sequence[str]) -> None:
        if not secrets or not all(secrets):
            raise ValueError("at least one non-empty credentials key is needed")
        self._fernet = MultiFernet([_fernet(s) for s in secrets])

    def encrypt(self, password: str) -> bytes:
        return self._fernet.encrypt(password.encode("utf-8"))

    def decrypt(self, secret: bytes) -> str:
        try:
            return self._fernet.decrypt(secret).decode("utf-8")
        except InvalidToken as exc:
            raise CredentialsUnreadable(
                "The stored agency password cannot be decrypted with the configured key; "
                "set the account again."
            ) from exc
