"""Opaque keyset cursors: the sort key of a page's last item, base64url-encoded JSON.

Keyset (not offset) pagination: stable while new tasks arrive, and each page is an index
range scan however deep the client pages.
"""

from __future__ import annotations

import base64
import binascii
import json
from datetime import datetime
from typing import Any
from uuid import UUID

from imagetron_images.app.ports import ImagePageKey, TaskPageKey
from imagetron_platform.errors import InvalidRequest

DEFAULT_PAGE_SIZE = 50


def encode_task_cursor(key: TaskPageKey) -> str:
    return _encode({"c": key.created_at.isoformat(), "id": str(key.id)})


def decode_task_cursor(cursor: str) -> TaskPageKey:
    data = _decode(cursor)
    try:
        return TaskPageKey(created_at=_aware(data["c"]), id=UUID(data["id"]))
    except (KeyError, TypeError, ValueError) as exc:
        raise _invalid() from exc


def encode_image_cursor(key: ImagePageKey) -> str:
    return _encode({"c": key.created_at.isoformat(), "t": str(key.task_id), "i": key.index})


def decode_image_cursor(cursor: str) -> ImagePageKey:
    data = _decode(cursor)
    try:
        index = data["i"]
        if not isinstance(index, int):
            raise TypeError("index")
        return ImagePageKey(created_at=_aware(data["c"]), task_id=UUID(data["t"]), index=index)
    except (KeyError, TypeError, ValueError) as exc:
        raise _invalid() from exc


def _encode(data: dict[str, Any]) -> str:
    raw = json.dumps(data, separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def _decode(cursor: str) -> dict[str, Any]:
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        data = json.loads(raw)
    except (binascii.Error, ValueError) as exc:
        raise _invalid() from exc
    if not isinstance(data, dict):
        raise _invalid()
    return data


def _aware(value: Any) -> datetime:
    if not isinstance(value, str):
        raise TypeError("timestamp")
    moment = datetime.fromisoformat(value)
    if moment.tzinfo is None:
        raise ValueError("naive timestamp")
    return moment


def _invalid() -> InvalidRequest:
    return InvalidRequest("The cursor is not one this API handed out.")
