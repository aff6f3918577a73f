"""Opaque keyset cursors for newest-first listings.

A cursor is the url-safe base64 of a small JSON document naming the last item shown, so the
next page starts strictly after it however many rows are inserted meanwhile. Clients must
treat it as opaque; anything that does not decode is a 422.
"""

from __future__ import annotations

import base64
import binascii
import json
from datetime import datetime
from uuid import UUID

from imagetron_contracts.models.common import FieldError
from imagetron_platform.errors import InvalidRequest
from imagetron_prompts.app.ports import PageKey

_VERSION = 1


def encode_cursor(key: PageKey) -> str:
    document = {"v": _VERSION, "t": key.created_at.isoformat(), "id": str(key.id)}
    raw = json.dumps(document, separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_cursor(cursor: str) -> PageKey:
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        document = json.loads(raw)
        if not isinstance(document, dict) or document.get("v") != _VERSION:
            raise ValueError("unknown cursor version")
        created_at = datetime.fromisoformat(document["t"])
        if created_at.tzinfo is None:
            raise ValueError("cursor time without a time zone")
        return PageKey(created_at=created_at, id=UUID(document["id"]))
    except (binascii.Error, UnicodeDecodeError, ValueError, KeyError, TypeError) as exc:
        raise InvalidRequest(
            "The cursor is not valid; list again from the first page.",
            errors=[FieldError(loc=["cursor"], msg="Not a cursor from a previous page.")],
        ) from exc
