"""Users and their API keys. A key is shown once; only its SHA-256 is kept (keys are 256
random bits, so a fast hash is enough: there is nothing to brute-force)."""

from __future__ import annotations

import hashlib
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


def new_api_key() -> str:
    return KEY_PREFIX + secrets.token_urlsafe(32)


def hash_api_key(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()
