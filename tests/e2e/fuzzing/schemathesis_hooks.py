"""Schemathesis hooks for the contract run (`test_contract_fuzzing.py` names this module in
`schemathesis.toml`).

Idempotency keys are made unique per call, as a client makes them (see `before_call`).

Cursors are opaque: the server hands them out and refuses any other (422 about `cursor`).
A random string of the documented shape is valid by the schema and still refused, so
before each call such a string becomes a real cursor (the platform's codec, a position
derived from the string); strings the schema forbids are sent as generated."""

from __future__ import annotations

import hashlib
import os
import re
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import schemathesis

from imagetron_images.app.images import IMAGE_CURSORS
from imagetron_images.app.ports import ImagePageKey
from imagetron_platform.pagination import Cursors, PageKey

CURSOR_SHAPE = re.compile(r"^[A-Za-z0-9_=-]{1,500}$")
#: Listings ordered by creation time and id, except images (task, then index).
NEWEST_FIRST = Cursors(PageKey)


def _real_cursor(path: str, text: str) -> str:
    digest = hashlib.sha256(text.encode()).digest()
    when = datetime(2026, 1, 1, tzinfo=UTC) + timedelta(seconds=int.from_bytes(digest[:4]))
    some_id = uuid.UUID(bytes=digest[:16])
    if path == "/api/v1/images":
        return IMAGE_CURSORS.encode(ImagePageKey(created_at=when, task_id=some_id, index=1))
    return NEWEST_FIRST.encode(PageKey(created_at=when, id=some_id))


#: A well-formed Idempotency-Key (the contract's pattern and length).
IDEMPOTENCY_KEY = re.compile(r"^[\x21-\x7E]{1,255}$")


def _unique_key(key: str) -> str:
    return key[:222] + uuid.uuid4().hex


@schemathesis.hook
def before_call(ctx: Any, case: Any, **kwargs: Any) -> None:
    cursor = (case.query or {}).get("cursor")
    if isinstance(cursor, str) and CURSOR_SHAPE.fullmatch(cursor):
        case.query["cursor"] = _real_cursor(case.operation.path, cursor)
    # A client sends a new Idempotency-Key with each new request; schemathesis generates few
    # distinct ones, and reusing one with another body is rightly a 422. Reuse itself is
    # tested in services/gateway/tests/test_idempotency.py.
    key = (case.headers or {}).get("Idempotency-Key")
    if isinstance(key, str) and IDEMPOTENCY_KEY.fullmatch(key):
        case.headers["Idempotency-Key"] = _unique_key(key)


@schemathesis.auth(refresh_interval=3600)
class FreshUser:
    """Schemathesis calls the API as an ordinary user of its own, made with the stack's
    admin key (`IMAGETRON_FUZZ_ADMIN_KEY`): it may revoke its own keys (then it gets a new
    user on the next 401) but can neither revoke the admin key nor touch other users, which
    the rest of the session's tests rely on."""

    def get(self, case: Any, ctx: Any) -> str:
        response = httpx.post(
            f"{os.environ['IMAGETRON_FUZZ_BASE_URL']}/api/v1/users",
            json={"name": f"fuzz-{uuid.uuid4().hex[:8]}"},
            headers={"Authorization": f"Bearer {os.environ['IMAGETRON_FUZZ_ADMIN_KEY']}"},
            timeout=30,
        )
        response.raise_for_status()
        key: str = response.json()["api_key"]
        return key

    def set(self, case: Any, data: str, ctx: Any) -> None:
        case.headers = {**(case.headers or {}), "Authorization": f"Bearer {data}"}
